"""Model adapters, one per task. Only torch/transformers code lives here: no HTTP, no queues.

This module itself imports no torch: :data:`TASKS` says, for each task, which adapter serves it
and which methods it offers, and :func:`load_model` imports the one adapter a config needs.
A new task adds its adapter module and one line here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .contract import BatchMethod, InvalidInput, Method, TaskModel
from .entities_io import EXTRACT_ENTITIES
from .explain_io import EXPLAIN_IMAGE, EXPLAIN_TEXT
from .generation_io import GENERATE
from .image_io import CLASSIFY_IMAGE, DETECT_FACES, DETECT_OBJECTS, EMBED_FACES, EMBED_IMAGE
from .ocr_io import READ_TEXT
from .pii_io import FIND_PII
from .roles_io import LABEL_ROLES
from .scene_io import CLASSIFY_SCENE
from .speech_io import FIND_SPEECH, TRANSCRIBE
from .text_io import CLASSIFY_TEXT, EMBED, ZERO_SHOT_TEXT, Scores, TextItem, Vector


@dataclass(frozen=True)
class TaskSpec:
    """A task: the adapter class that serves it ("module:Class" under models/) and the methods it offers."""

    adapter: str
    methods: tuple[Method[Any, Any], ...]

    def offers(self, method: Method[Any, Any]) -> bool:
        return method in self.methods


TASKS: dict[str, TaskSpec] = {
    "text-generation": TaskSpec("text_generation:TextGenerationModel", (GENERATE,)),
    "embeddings": TaskSpec("embeddings:EmbeddingModel", (EMBED, ZERO_SHOT_TEXT)),  # labels by similarity
    "text-classification": TaskSpec("text_classification:TextClassificationModel", (CLASSIFY_TEXT, EXPLAIN_TEXT)),
    "image-classification": TaskSpec("image_classification:ImageClassificationModel",
                                     (CLASSIFY_IMAGE, EXPLAIN_IMAGE, EMBED_IMAGE)),  # embeddings: pooled features
    # named entities: a spaCy pipeline or a transformers token classifier (the adapter picks by source)
    "token-classification": TaskSpec("token_classification:TokenClassificationModel", (EXTRACT_ENTITIES,)),
    "object-detection": TaskSpec("object_detection:ObjectDetectionModel", (DETECT_OBJECTS,)),
    "face-detection": TaskSpec("faces:FaceDetectionModel", (DETECT_FACES,)),
    "face-embedding": TaskSpec("faces:FaceEmbeddingModel", (EMBED_FACES,)),  # dlib: CPU, not torch
    # Whisper: on CTranslate2 (faster-whisper, not torch) or transformers, by source
    "speech-recognition": TaskSpec("speech:SpeechRecognitionModel", (TRANSCRIBE, FIND_SPEECH)),
    "pii": TaskSpec("pii:PiiModel", (FIND_PII,)),  # personal data: Presidio over a spaCy pipeline
    "ocr": TaskSpec("ocr:OCRModel", (READ_TEXT,)),  # RapidOCR's PP-OCR networks on ONNX Runtime (CPU)
    # dependency rules over a spaCy parse, or a trained SRL token classifier (the adapter picks by source)
    "semantic-role-labeling": TaskSpec("srl:RoleModel", (LABEL_ROLES,)),
    # an operator's Places365 checkpoint; without one, scenes come from the image classifier and detector
    "scene-classification": TaskSpec("scene:SceneModel", (CLASSIFY_SCENE,)),
}


def load_model(config: Any, device: str, dtype: Any, cache_dir: Path) -> TaskModel:
    """Build the adapter for `config.task` (imports only the adapter that is needed)."""
    spec = TASKS.get(config.task)
    if spec is None:  # the config schema already restricts tasks; this guards a task without an adapter
        raise ValueError(f"no adapter for task {config.task!r}")
    module, name = spec.adapter.split(":")
    adapter = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    return adapter.load(config, device, dtype, cache_dir)  # type: ignore[no-any-return]


def missing_methods(task: str, model: TaskModel) -> list[str]:
    """The methods `task` declares that the loaded `model` does not implement (empty when it is complete)."""
    offered = model.batch_methods()
    return [method.name for method in TASKS[task].methods if method not in offered]


__all__ = ["TASKS", "BatchMethod", "InvalidInput", "Scores", "TaskModel", "TaskSpec", "TextItem", "Vector",
           "load_model", "missing_methods"]
