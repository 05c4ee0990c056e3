"""What the image tasks (image classification, object and face detection) take and give. Imports no torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .contract import Method
from .text_io import Scores, Vector


@dataclass(frozen=True)
class DetectionQuery:
    """An image to find things in, and how picky to be (thresholds already checked by the wire layer)."""

    image: Any  # a decoded RGB PIL image
    score_threshold: float = 0.25
    iou_threshold: float = 0.45  # boxes of one label that overlap more than this are one thing (NMS)
    max_detections: int = 100


@dataclass(frozen=True)
class Box:
    """A rectangle in pixels of the image the model was given: x to the right, y down."""

    x1: float
    y1: float
    x2: float
    y2: float

    def scaled(self, sx: float, sy: float) -> Box:
        return Box(self.x1 * sx, self.y1 * sy, self.x2 * sx, self.y2 * sy)


@dataclass(frozen=True)
class Detected:
    """One thing found: its label, the model's confidence, its box, and for faces five landmarks
    (eyes, nose, mouth corners: (x, y) each) and optionally an embedding."""

    label: str
    score: float
    box: Box
    landmarks: tuple[tuple[float, float], ...] | None = None
    embedding: tuple[float, ...] | None = None


@dataclass(frozen=True)
class Detections:
    """Everything found in one image, best first, with the size of the image the model was given."""

    width: int
    height: int
    objects: list[Detected]


CLASSIFY_IMAGE: Method[Any, Scores] = Method("classify-image")  # a PIL image, or an iterator's item


# An image classifier's pooled features (before its last layer), L2-normalised: image-to-image similarity only.
EMBED_IMAGE: Method[Any, Vector] = Method("embed-image")


DETECT_OBJECTS: Method[DetectionQuery, Detections] = Method("detect-objects")


DETECT_FACES: Method[DetectionQuery, Detections] = Method("detect-faces")  # boxes, scores, five landmarks


EMBED_FACES: Method[DetectionQuery, Detections] = Method("embed-faces")  # the same, each with its embedding
