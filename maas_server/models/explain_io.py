"""What explanations (token weights, Grad-CAM) take and give. Imports no torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .contract import Method
from .text_io import Scores, TextItem


@dataclass(frozen=True)
class ImageQuestion:
    """An image to classify and explain; `overlay` asks for a PNG heatmap drawn over it too."""

    image: Any  # a decoded PIL image
    overlay: bool = False


@dataclass(frozen=True)
class ImageExplanation:
    """Where the model looked for `label`: a grid of weights in [0, 1] (1: most important) over the image as
    the model saw it (after its resize and crop), rows top to bottom, and optionally that view as a PNG heatmap."""

    label: str
    grid: list[list[float]]
    overlay_png: bytes | None = None


@dataclass(frozen=True)
class TokenWeight:
    """One input token's share in a text's top label: `weight` in [-1, 1], > 0 for, < 0 against it; `start`
    and `end` are character offsets into the text."""

    text: str
    start: int
    end: int
    weight: float


@dataclass(frozen=True)
class TextExplanation:
    label: str
    tokens: list[TokenWeight]


@dataclass(frozen=True)
class Explained:
    """A classification and the explanation of its top label."""

    scores: Scores
    explanation: ImageExplanation | TextExplanation


# Explanations cost a backward pass: adapters run them in the EXPLAIN_LANE, on a copy of the network.
EXPLAIN_TEXT: Method[TextItem, Explained] = Method("explain-text")


EXPLAIN_IMAGE: Method[ImageQuestion, Explained] = Method("explain-image")
