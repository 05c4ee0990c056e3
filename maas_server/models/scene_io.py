"""What scene labelling takes and gives. Imports no torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .contract import Method


@dataclass(frozen=True)
class SceneEvidence:
    """One clue to a scene: where it comes from ("imagenet" class, "coco" object, "places365" class), its
    label and its score."""

    source: str
    label: str
    score: float


@dataclass(frozen=True)
class Scene:
    """The place an image shows: Places365's top level ("indoor", "outdoor natural", "outdoor man-made") and a
    fine label ("kitchen"), both None when nothing gives it away; how it was found ("heuristic": rules over
    ImageNet classes and COCO objects, "model": a scene classifier) and the clues, those behind the label first."""

    top_level: str | None
    label: str | None
    score: float
    method: str
    evidence: list[SceneEvidence]


CLASSIFY_SCENE: Method[Any, Scene] = Method("classify-scene")  # a scene classifier (Places365): a PIL image
