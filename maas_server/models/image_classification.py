"""Image classifiers: timm architectures with a weights file, or HF image-classification models.

``architecture = "timm:NAME"`` builds ``timm.create_model(NAME)`` and loads ``source`` (a ``.pth``
read with ``weights_only=True``, or ``.safetensors``) into it. When the file's key names differ
from timm's (as for the EfficientNet-Lite0 package, whose tensors line up one-for-one in order and
shape), tensors are matched by position after checking that every shape agrees. Without
``architecture`` the source is loaded with ``AutoModelForImageClassification``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from . import explain, onnx_runtime
from .contract import EXPLAIN_LANE, BatchMethod, Method, ModelDescription
from .explain_io import EXPLAIN_IMAGE, Explained, ImageExplanation, ImageQuestion
from .image_io import CLASSIFY_IMAGE, EMBED_IMAGE
from .onnx_runtime import TORCH, Export, Gate, choose_forward, top1_agreement, weight_files
from .sources import resolve_source
from .text_io import Scores, Vector
from .traced import Forward, traced_forward, wants_trace

TIMM_PREFIX = "timm:"
Normalisation = tuple[tuple[float, ...], tuple[float, ...]]  # per-channel mean and std of the model's input


class ImageClassificationModel:
    """Serves ``/v1/classify/image``. Items are decoded RGB ``PIL.Image`` objects."""

    task = "image-classification"

    def __init__(self, model: Any, logits: Forward, transform: Callable[[Image.Image], torch.Tensor],
                 labels: list[str], *, device: str, dtype: torch.dtype,
                 normalisation: Normalisation = ((0.0,) * 3, (1.0,) * 3), runtime: str = TORCH) -> None:
        """`logits`: the network's float logits from a batch of pixels: traced or not (traced.py), or on
        ONNX Runtime (`runtime`, onnx_runtime.py). Explanations always run `model`, on torch."""
        self.model = model
        self.transform = transform
        self.labels = labels
        self.device = device
        self.runtime = runtime
        self.torch_dtype = dtype
        self.dtype = "int8" if runtime == "onnx-int8" else str(dtype).removeprefix("torch.")
        self.normalisation = normalisation
        self._explained: Any = None  # the explain lane's own copy of the network, made on first use
        self._size: int | None = None  # the embedding's length, measured on first use
        self._logits = logits

    @classmethod
    def load(cls, config: Any, device: str, dtype: torch.dtype, cache_dir: Path) -> ImageClassificationModel:
        if config.source.startswith(TIMM_PREFIX) or (config.architecture or "").startswith(TIMM_PREFIX):
            model, transform, labels, normalisation = _load_timm(config)
        elif config.architecture:
            raise ValueError(f"model {config.name!r}: unknown architecture {config.architecture!r}; "
                             "use 'timm:NAME' or omit it")
        else:
            model, transform, labels, normalisation = _load_hf(config)
        model = model.to(device=device, dtype=dtype).eval()
        eager = Logits(model)
        logits: Forward = eager
        if wants_trace(config.trace, device):
            logits = traced_forward(eager, lambda: _trace_checks(transform, device, dtype), name=config.name,
                                    freeze=True)
        chosen = choose_forward(eager, logits, runtime=config.runtime, name=config.name, device=device,
                                export=lambda: _export(transform, config), sample=lambda: gate_sample(transform),
                                gate=Gate("top-1 agreement", onnx_runtime.MIN_TOP1_AGREEMENT, top1_agreement),
                                cache_dir=cache_dir)
        return cls(model, chosen.forward, transform, labels, device=device, dtype=dtype, normalisation=normalisation,
                   runtime=chosen.runtime)

    def describe(self) -> ModelDescription:
        return ModelDescription(device=self.device, dtype=self.dtype, runtime=self.runtime, labels=tuple(self.labels),
                                dimensions=self._dimensions())

    def batch_methods(self) -> dict[Method[Any, Any], BatchMethod]:
        # Resizing and normalising an image costs ~15% of the model's time: do it on request threads.
        return {CLASSIFY_IMAGE: BatchMethod(self.prepare, self.classify, prepare_on_caller=True),
                EMBED_IMAGE: BatchMethod(self.prepare, self.embed, prepare_on_caller=True),
                EXPLAIN_IMAGE: BatchMethod(self.prepare_question, self.explain, prepare_on_caller=True,
                                           lane=EXPLAIN_LANE)}

    def warmup(self) -> None:
        self.classify([self.prepare(Image.new("RGB", (64, 64)))])
        explain.preload()

    def prepare(self, image: Image.Image) -> torch.Tensor:
        return self.transform(image.convert("RGB"))

    @torch.inference_mode()
    def classify(self, batch: list[torch.Tensor]) -> list[Scores]:
        pixels = torch.stack(batch).to(device=self.device, dtype=self.torch_dtype)
        return [self._scores(row) for row in torch.softmax(self._logits(pixels), dim=-1)]

    @torch.inference_mode()
    def embed(self, batch: list[torch.Tensor]) -> list[Vector]:
        """Each image's pooled features, the input of the network's last layer, scaled to length 1."""
        pixels = torch.stack(batch).to(device=self.device, dtype=self.torch_dtype)
        features = torch.nn.functional.normalize(pooled_features(self.model, pixels).float(), dim=-1)
        return [Vector(row, tokens=1) for row in features.tolist()]

    def _dimensions(self) -> int:
        if self._size is None:  # measured once on a blank image: timm and transformers name the size differently
            self._size = len(self.embed([self.prepare(Image.new("RGB", (32, 32)))])[0].values)
        return self._size

    def _scores(self, probs: torch.Tensor) -> Scores:
        # One sort and two tolist() calls: reading 1000 tensor elements one by one (float(probs[i]))
        # held the runner's GIL for ~40% of its Python time at c=16 (py-spy, docs/performance.md).
        values, order = torch.sort(probs, descending=True)
        return Scores([(self.labels[i], p) for i, p in zip(order.tolist(), values.tolist())], tokens=1)

    def prepare_question(self, question: ImageQuestion) -> tuple[torch.Tensor, bool]:
        return self.prepare(question.image), question.overlay

    def explain(self, batch: list[tuple[torch.Tensor, bool]]) -> list[Explained]:
        """Classify each image and show where the network looked for its top label (Grad-CAM)."""
        network = self._explaining_network()
        results = []
        for tensor, overlay in batch:
            pixels = tensor[None].to(device=self.device, dtype=self.torch_dtype)
            with torch.no_grad():
                scores = self._scores(torch.softmax(explain.logits_of(network(pixels)), dim=-1)[0])
            top = self.labels.index(scores.labels[0][0])
            grid = explain.gradcam_grid(lambda x: explain.logits_of(network(x)), explain.last_conv(network),
                                        pixels, top).float().cpu()
            png = explain.overlay_png(self._view(tensor), grid) if overlay else None
            results.append(Explained(scores, ImageExplanation(scores.labels[0][0], grid.tolist(), png)))
        return results

    def _explaining_network(self) -> Any:
        # A private copy: Grad-CAM hooks a layer, and the default lane's forward passes must not run them.
        if self._explained is None:
            self._explained = copy.deepcopy(self.model)
        return self._explained

    def _view(self, tensor: torch.Tensor) -> torch.Tensor:
        """The image as the network saw it, in [0, 1]: its input with the normalisation undone."""
        mean, std = (torch.tensor(values).view(-1, 1, 1) for values in self.normalisation)
        return (tensor.float().cpu() * std + mean).clamp(0, 1)


def pooled_features(model: Any, pixels: torch.Tensor) -> torch.Tensor:
    """(batch, features): what a classifier's last layer reads. timm: its pre-logits; transformers: the base
    model's pooled output, else its first token (a ViT's [CLS]) or its spatial mean."""
    if hasattr(model, "forward_head"):  # timm
        return model.forward_head(model.forward_features(pixels), pre_logits=True).flatten(1)  # type: ignore[no-any-return]
    outputs = getattr(model, model.base_model_prefix)(pixel_values=pixels)
    pooled = getattr(outputs, "pooler_output", None)
    if pooled is not None:
        return pooled.flatten(1)  # type: ignore[no-any-return]
    hidden: torch.Tensor = outputs.last_hidden_state
    return hidden[:, 0] if hidden.dim() == 3 else hidden.mean(dim=(2, 3))


class Logits(torch.nn.Module):
    """A classifier returning its logits as one float tensor, from a timm or a transformers model."""

    def __init__(self, network: torch.nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return explain.logits_of(self.network(pixels))


def _trace_checks(transform: Callable[[Image.Image], torch.Tensor], device: str,
                  dtype: torch.dtype) -> list[tuple[torch.Tensor]]:
    """Batches of 1 and 3 of one image, as `prepare` makes it: the inputs a traced graph must match eager on."""
    pixels = transform(Image.new("RGB", (64, 48), (120, 60, 30)))
    return [(torch.stack([pixels] * n).to(device=device, dtype=dtype),) for n in (1, 3)]


def _export(transform: Callable[[Image.Image], torch.Tensor], config: Any) -> Export:
    """A batch of pixels of variable size, traced on one image; cached by the weights file when there is one."""
    example = transform(Image.new("RGB", (64, 48), (120, 60, 30)))[None]
    weights = () if config.source.startswith(TIMM_PREFIX) else weight_files(resolve_source(config.source))
    return Export((example,), ("pixels",), {"pixels": {0: "batch"}, "output": {0: "batch"}}, weights)


def gate_sample(transform: Callable[[Image.Image], torch.Tensor], count: int = 32,
                seed: int = 0) -> list[tuple[torch.Tensor]]:
    """Images to gate an image graph on, made from a fixed seed: smooth colour fields with a bright shape,
    as `prepare` makes them; a batch of all of them, and the first alone."""
    generator = torch.Generator().manual_seed(seed)
    images = []
    for i in range(count):
        field = torch.rand(3, 6, 6, generator=generator)
        pixels = torch.nn.functional.interpolate(field[None], size=(160, 200), mode="bicubic")[0]
        top, left = int(torch.randint(0, 100, (1,), generator=generator)), (i * 5) % 160
        pixels[:, top:top + 50, left:left + 40] = torch.rand(3, 1, 1, generator=generator)
        array = (pixels.clamp(0, 1) * 255).byte().permute(1, 2, 0).numpy()
        images.append(transform(Image.fromarray(array)))
    batch = torch.stack(images)
    return [(batch,), (batch[:1],)]


def _load_timm(config: Any) -> tuple[Any, Callable[[Image.Image], torch.Tensor], list[str], Normalisation]:
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
    settings = {**data_config, **overrides}
    transform = create_transform(**settings, is_training=False)
    # nn.Module.__getattr__ is typed Tensor | Module; timm models hold an int here.
    num_classes: int = model.num_classes  # type: ignore[assignment]
    if num_classes == 1000:
        info = ImageNetInfo()  # reads its label files on construction: build it once
        labels = [info.index_to_description(i) for i in range(1000)]
    else:
        labels = [f"LABEL_{i}" for i in range(num_classes)]
    return model, transform, labels, (tuple(settings["mean"]), tuple(settings["std"]))


def _load_hf(config: Any) -> tuple[Any, Callable[[Image.Image], torch.Tensor], list[str], Normalisation]:
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
    mean = overrides.get("image_mean", getattr(processor, "image_mean", None) or (0.0, 0.0, 0.0))
    std = overrides.get("image_std", getattr(processor, "image_std", None) or (1.0, 1.0, 1.0))
    return model, transform, labels, (tuple(mean), tuple(std))


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
