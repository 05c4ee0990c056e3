"""What reading text in images (OCR) takes and gives. Imports no torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .contract import Method


@dataclass(frozen=True)
class TextQuery:
    """An image to read text in, and the lowest recognition score a line may have to be returned."""

    image: Any  # a decoded RGB PIL image
    score_threshold: float = 0.5


@dataclass(frozen=True)
class TextLine:
    """One line of text read in an image: its characters, the recogniser's confidence in [0, 1], and its
    polygon: four (x, y) corners, clockwise from the top left of the text, in pixels of the image given."""

    text: str
    score: float
    box: tuple[tuple[float, float], ...]

    def scaled(self, sx: float, sy: float) -> TextLine:
        return TextLine(self.text, self.score, tuple((x * sx, y * sy) for x, y in self.box))


@dataclass(frozen=True)
class ReadText:
    """The text of one image: its lines in reading order, and all of it as one string (a space between
    lines that share a row, a newline between rows), with the size of the image the model was given."""

    width: int
    height: int
    lines: list[TextLine]
    text: str

    def scaled(self, width: int, height: int) -> ReadText:
        """The same lines with their polygons in pixels of an image of `width` x `height` (the original)."""
        sx, sy = width / self.width, height / self.height
        return ReadText(width, height, [line.scaled(sx, sy) for line in self.lines], self.text)


READ_TEXT: Method[TextQuery, ReadText] = Method("read-text")  # OCR: lines, their polygons, the text in reading order
