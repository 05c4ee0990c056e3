"""Model adapters, one per task. Only torch/transformers code lives here: no HTTP, no queues."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import BatchMethod, InvalidInput, Scores, TaskModel, TextItem, Vector


def load_model(config: Any, device: str, dtype: Any, cache_dir: Path) -> TaskModel:
    """Build the adapter for `config.task` (imports only the adapter that is needed)."""
    if config.task == "text-generation":
        from .text_generation import TextGenerationModel as adapter
    elif config.task == "embeddings":
        from .embeddings import EmbeddingModel as adapter  # type: ignore[assignment]
    elif config.task == "text-classification":
        from .text_classification import TextClassificationModel as adapter  # type: ignore[assignment]
    elif config.task == "image-classification":
        from .image_classification import ImageClassificationModel as adapter  # type: ignore[assignment]
    else:  # the config schema already restricts tasks; this guards a new task without an adapter
        raise ValueError(f"no adapter for task {config.task!r}")
    return adapter.load(config, device, dtype, cache_dir)


__all__ = ["BatchMethod", "InvalidInput", "Scores", "TaskModel", "TextItem", "Vector", "load_model"]
