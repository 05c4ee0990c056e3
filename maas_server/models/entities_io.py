"""What named-entity extraction takes and gives. Imports no torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .contract import Method

# How entities are reported: "simple" merges a B-/I- run of tokens into one span; "none" gives one row
# per token that is inside an entity, labelled with its IOB tag ("B-PERSON"). The wire uses this type too.
Aggregation = Literal["simple", "none"]


@dataclass(frozen=True)
class EntityItem:
    """A text to find named entities in, and how to report them."""

    text: str
    aggregation: Aggregation = "simple"


@dataclass(frozen=True)
class Entity:
    """A span of the input: ``text == input[start:end]`` (character offsets), its label and score.

    `score` is the model's probability for the label (the mean over the span's tokens), or None
    when the model gives none (spaCy's greedy transition-based NER decides without scores).
    """

    text: str
    label: str
    start: int
    end: int
    score: float | None


@dataclass(frozen=True)
class Entities:
    """The entities of one text, in order, and the number of tokens it cost (for `usage`)."""

    entities: list[Entity]
    tokens: int


EXTRACT_ENTITIES: Method[EntityItem, Entities] = Method("extract-entities")
