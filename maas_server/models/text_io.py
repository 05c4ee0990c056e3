"""What the text tasks (embeddings, text classification) take and give. Imports no torch."""

from __future__ import annotations

from dataclasses import dataclass

from .contract import Method


@dataclass(frozen=True)
class TextItem:
    """A text to classify and, optionally, the candidate labels (zero-shot, or a subset)."""

    text: str
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Vector:
    """An embedding and the number of tokens it cost (for `usage`)."""

    values: list[float]
    tokens: int


@dataclass(frozen=True)
class Scores:
    """Labels with scores, best first, and what it cost (tokens, or 1 per image)."""

    labels: list[tuple[str, float]]
    tokens: int


@dataclass(frozen=True)
class TokenIds:
    """An input given as token ids in the model's own vocabulary (OpenAI's embeddings accept them)."""

    ids: tuple[int, ...]


EMBED: Method[str | TokenIds, Vector] = Method("embed")


CLASSIFY_TEXT: Method[TextItem, Scores] = Method("classify-text")  # the model's own labels (or a subset)


ZERO_SHOT_TEXT: Method[TextItem, Scores] = Method("zero-shot-text")  # any labels the request names
