"""Image classifiers: timm architectures with a weights file, or HF image-classification models.

``architecture = "timm:NAME"`` builds ``timm.create_model(NAME)`` and loads ``source`` (a ``.pth``
read with ``weights_only=True``, or ``.safetensors``) into it. When the file's key names differ
from timm's (as for the EfficientNet-Lite0 package, whose tensors line up one-for-one in order and
shape), tensors are matched by position after checking that every shape agrees. Without
``architecture`` the source is loaded with ``AutoModelForImageClassification``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from .base import CLASSIFY_IMAGE, BatchMethod, Method, ModelDescription, Scores
from .sources import resolve_source

TIMM_PREFIX = "timm:"


class ImageClassificationModel:
    """Serves ``/v1/classify/image``. Items are decoded RGB ``PIL.Image`` objects."""

    task = "image-classification"

    def __init__(self, model: Any, transform: Callable[[Image.Image], torch.Tensor], labels: list[str], *,
                 device: str, dtype: torch.dtype) -> None:
        self.model = model
        self.transform = transform
        self.labels = labels
        self.device = device
        self.torch_dtype = dtype
        self.dtype = str(dtype).removeprefix("torch.")

    @classmethod
    def load(cls, config: Any, device: str, dtype: torch.dtype, cache_dir: Path) -> ImageClassificationModel:
        if config.source.startswith(TIMM_PREFIX) or (config.architecture or "").startswith(TIMM_PREFIX):
            model, transform, labels = _load_timm(config)
        elif config.architecture:
            raise ValueError(f"model {config.name!r}: unknown architecture {config.architecture!r}; "
                             "use 'timm:NAME' or omit it")
        else:
            model, transform, labels = _load_hf(config)
        return cls(model.to(device=device, dtype=dtype).eval(), transform, labels, device=device, dtype=dtype)

    def describe(self) -> ModelDescription:
        return ModelDescription(device=self.device, dtype=self.dtype, labels=tuple(self.labels))

    def batch_methods(self) -> dict[Method[Any, Any], BatchMethod]:
        # Resizing and normalising an image costs ~15% of the model's time: do it on request threads.
        return {CLASSIFY_IMAGE: BatchMethod(self.prepare, self.classify, prepare_on_caller=True)}

    def warmup(self) -> None:
        self.classify([self.prepare(Image.new("RGB", (64, 64)))])

    def prepare(self, image: Image.Image) -> torch.Tensor:
        return self.transform(image.convert("RGB"))

    @torch.inference_mode()
    def classify(self, batch: list[torch.Tensor]) -> list[Scores]:
        pixels = torch.stack(batch).to(device=self.device, dtype=self.torch_dtype)
        output = self.model(pixels)
        logits = getattr(output, "logits", output).float()
        probs = torch.softmax(logits, dim=-1)
        results = []
        for row in probs:
            order = torch.argsort(row, descending=True).tolist()
            results.append(Scores([(self.labels[i], float(row[i])) for i in order], tokens=1))
        return results


def _load_timm(config: Any) -> tuple[Any, Callable[[Image.Image], torch.Tensor], list[str]]:
    import timm
    from timm.data import ImageNetInfo, create_transform, resolve_data_config

    name = (config.architecture or config.source)[len(TIMM_PREFIX):]
    if config.source.startswith(TIMM_PREFIX):  # timm's own pretrained weights (needs a model hub)
        model = timm.create_model(name, pretrained=True)
    else:
        model = timm.create_model(name, pretrained=False)
        model.load_state_dict(_match_state_dict(_read_weights(resolve_source(config.source)), model.state_dict()))
    data_config = resolve_data_config({}, model=model)
    overrides = {k: v for k, v in (("mean", config.preprocess.mean), ("std", config.preprocess.std)) if v is not None}
    if config.preprocess.size:
        overrides["input_size"] = (3, config.preprocess.size, config.preprocess.size)
    transform = create_transform(**{**data_config, **overrides}, is_training=False)
    # nn.Module.__getattr__ is typed Tensor | Module; timm models hold an int here.
    num_classes: int = model.num_classes  # type: ignore[assignment]
    if num_classes == 1000:
        info = ImageNetInfo()  # reads its label files on construction: build it once
        labels = [info.index_to_description(i) for i in range(1000)]
    else:
        labels = [f"LABEL_{i}" for i in range(num_classes)]
    return model, transform, labels


def _load_hf(config: Any) -> tuple[Any, Callable[[Image.Image], torch.Tensor], list[str]]:
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    path = resolve_source(config.source)
    processor = AutoImageProcessor.from_pretrained(path)
    model = AutoModelForImageClassification.from_pretrained(path)
    overrides: dict[str, Any] = {}
    if config.preprocess.mean is not None:
        overrides["image_mean"] = list(config.preprocess.mean)
    if config.preprocess.std is not None:
        overrides["image_std"] = list(config.preprocess.std)

    def transform(image: Image.Image) -> torch.Tensor:
        pixel_values: torch.Tensor = processor(images=image, return_tensors="pt", **overrides)["pixel_values"][0]
        return pixel_values

    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    return model, transform, labels


def _read_weights(path: str) -> dict[str, torch.Tensor]:
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    # weights_only: never unpickle arbitrary objects from a model file.
    state = torch.load(path, map_location="cpu", weights_only=True)
    weights: dict[str, torch.Tensor] = state.get("state_dict", state) if isinstance(state, dict) else state
    return weights


def _match_state_dict(weights: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Use the file's names when they match; else pair tensors by position, checking every shape."""
    if set(weights) == set(target):
        return weights
    if len(weights) != len(target):
        raise ValueError(f"weights file has {len(weights)} tensors but the architecture expects {len(target)}")
    matched = {}
    for (src_name, tensor), (dst_name, expected) in zip(weights.items(), target.items()):
        if tensor.shape != expected.shape:
            raise ValueError(f"weights do not fit the architecture: {src_name} {tuple(tensor.shape)} "
                             f"vs {dst_name} {tuple(expected.shape)}")
        matched[dst_name] = tensor
    return matched
