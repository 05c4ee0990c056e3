"""What personal-data detection and redaction take and give. Imports no torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .contract import Method

# How found spans are replaced: "type" writes ``<TYPE>`` (``<PERSON>``), "mask" repeats one character
# over each of the span's characters. The wire uses this type too.
Redaction = Literal["type", "mask"]


@dataclass(frozen=True)
class PiiItem:
    """A text to find personal data in: which types (empty: the model's default set), the lowest score
    kept, and whether and how to redact what is found (None: find only)."""

    text: str
    types: tuple[str, ...] = ()
    score_threshold: float = 0.0
    redaction: Redaction | None = None
    mask: str = "*"


@dataclass(frozen=True)
class PiiSpan:
    """A span of personal data: its type (``EMAIL_ADDRESS``), character offsets into the input and the
    recognizer's confidence in [0, 1]. Spans of one text never overlap."""

    type: str
    start: int
    end: int
    score: float


@dataclass(frozen=True)
class PiiResult:
    """The spans of one text in order, the text with them replaced (when asked), and its tokens (`usage`)."""

    spans: list[PiiSpan]
    redacted: str | None
    tokens: int


FIND_PII: Method[PiiItem, PiiResult] = Method("find-pii")  # personal data: found, and redacted if asked
