"""Image embeddings: an image classifier's pooled features (EMBED_IMAGE), from timm and transformers models, and
from the served EfficientNet-Lite0 on photos, where the same photo changed a little stays closer than another."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image, ImageOps

from maas_server.config import ModelConfig
from maas_server.models import load_model
from maas_server.models.image_classification import ImageClassificationModel
from maas_server.models.image_io import EMBED_IMAGE
from maas_server.settings import load_settings
from tests import tiny_models


def _embed(model: ImageClassificationModel, images: list[Image.Image]) -> np.ndarray:
    method = model.batch_methods()[EMBED_IMAGE]
    return np.array([v.values for v in method.run([method.prepare(image) for image in images])])


def _photo(name: str) -> Image.Image:
    return Image.fromarray(np.asarray(getattr(skimage.data, name)())).convert("RGB")


@pytest.mark.parametrize("kind", ["timm", "transformers"])
def test_tiny_classifiers_embed_in_their_feature_size(tmp_path: Path, kind: str) -> None:
    if kind == "timm":
        config = ModelConfig(name="t", task="image-classification", source=tiny_models.timm_weights(tmp_path),
                             architecture="timm:test_efficientnet", trace=False)
    else:
        config = ModelConfig(name="t", task="image-classification", source=tiny_models.resnet(tmp_path / "r"))
    model = load_model(config, "cpu", torch.float32, tmp_path)
    assert isinstance(model, ImageClassificationModel)
    vectors = _embed(model, [_photo("coffee"), _photo("chelsea"), _photo("coffee")])
    assert vectors.shape == (3, model.describe().dimensions)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert np.allclose(vectors[0], vectors[2], atol=1e-5)  # the same image, the same vector, whatever its batch
    if kind == "transformers":
        assert model.describe().dimensions == 16  # the tiny ResNet's last stage


def test_the_served_classifier_keeps_a_photo_near_its_variants(tmp_path: Path) -> None:
    config = next(m for m in load_settings().models if m.task == "image-classification")
    model = load_model(config, "cpu", torch.float32, tmp_path)
    assert isinstance(model, ImageClassificationModel) and model.describe().dimensions == 1280
    photos = {name: _photo(name) for name in ("chelsea", "coffee", "astronaut", "rocket")}
    cat = photos["chelsea"]
    variants = [ImageOps.mirror(cat), cat.resize((cat.width // 2, cat.height // 2)),
                ImageOps.autocontrast(cat, cutoff=5)]
    vectors = _embed(model, [cat, *variants, *(photos[n] for n in ("coffee", "astronaut", "rocket"))])
    similar = vectors[1:4] @ vectors[0]
    different = vectors[4:] @ vectors[0]
    # Measured (AVX2): the variants 0.95-0.98 from the cat, the other photos 0.09-0.13.
    assert similar.min() > different.max() + 0.5, (similar, different)
