"""An app serving six tiny self-made models (and the real face models) through the real loading code."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from maas_server.app import create_app
from maas_server.settings import Settings, load_settings


def tiny_config(tmp: Path, gpt2: str, bert: str, bert_cls: str, resnet: str, timm_weights: str,
                ner: str | None = None, pii: str | None = None, **server) -> Settings:
    entities = [{"name": "tiny-ner", "task": "token-classification", "source": ner, "max_queue": 64}] if ner else []
    entities += [{"name": "ruler-pii", "task": "pii", "source": pii, "max_queue": 64}] if pii else []
    return load_settings(file={
        "server": {"cache_dir": str(tmp / "cache"), "max_body_bytes": 2_000_000, "max_inputs": 8, "max_tokens": 64,
                   "max_n": 3, "max_image_bytes": 200_000, "max_image_pixels": 1_000_000,
                   "max_request_pixels": 3_000_000, "image_max_side": 128, **server},
        "models": [
            {"name": "tiny-gpt2", "task": "text-generation", "source": gpt2, "max_queue": 64},
            {"name": "tiny-embed", "task": "embeddings", "source": bert, "max_queue": 64},
            {"name": "tiny-sentiment", "task": "text-classification", "source": bert_cls, "max_queue": 64},
            {"name": "tiny-resnet", "task": "image-classification", "source": resnet, "max_queue": 64},
            {"name": "tiny-timm", "task": "image-classification", "source": timm_weights,
             "architecture": "timm:test_efficientnet", "preprocess": {"size": 64, "mean": [0.5, 0.5, 0.5],
                                                                      "std": [0.5, 0.5, 0.5]}, "max_queue": 64},
            *face_models(),
            *entities,
            _tiny_detector(tmp),
        ],
    })


def face_models() -> list[dict]:
    """The real face models, when their packages are installed: their weights are small (MTCNN 2 MB, dlib's two
    files 32 MB, under a second to load). Without them the face routes answer 404 and tests/server/test_faces.py
    skips, saying what to install."""
    models = []
    if importlib.util.find_spec("facenet_pytorch"):
        models.append({"name": "mtcnn", "task": "face-detection", "source": "pkg://facenet_pytorch/data",
                       "max_queue": 64})
        if importlib.util.find_spec("dlib") and importlib.util.find_spec("face_recognition_models"):
            models.append({"name": "dlib-faces", "task": "face-embedding",
                           "source": "pkg://face_recognition_models/models", "max_queue": 64})
    return models


def _tiny_detector(tmp: Path) -> dict[str, object]:
    """A Darknet YOLO network with random weights (tests/tiny_models.py), written under `tmp` (milliseconds)."""
    from tests import tiny_models

    folder = tmp / "tiny-yolo"
    folder.mkdir(parents=True, exist_ok=True)
    return {"name": "tiny-yolo", "task": "object-detection", "source": tiny_models.darknet(folder),
            "architecture": f"darknet:{folder / 'tiny-yolo.cfg'}", "max_queue": 64}


@pytest.fixture(scope="session")
def app(tmp_path_factory: pytest.TempPathFactory, tiny_gpt2: str, tiny_bert: str, tiny_bert_classifier: str,
        tiny_resnet: str, tiny_timm_weights: str, tiny_ner: str) -> Flask:
    config = tiny_config(tmp_path_factory.mktemp("app"), tiny_gpt2, tiny_bert, tiny_bert_classifier, tiny_resnet,
                         tiny_timm_weights, tiny_ner)
    app = create_app(config)
    assert app.extensions["maas"].registry.wait_until_loaded(timeout=120)
    assert app.extensions["maas"].registry.ready, [e.error for e in app.extensions["maas"].registry.entries()]
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
