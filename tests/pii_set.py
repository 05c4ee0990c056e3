"""The hand-written personal-data set (tests/data/pii_sentences.jsonl) and how well spans found in it score.

Each line is a sentence and its spans as ``[TYPE, text]`` (the text occurs in the sentence): names, emails,
phone numbers, card numbers (valid Luhn), IBANs (valid ISO 13616 checksums) and IP addresses, and sentences
with none (numbers, versions, companies, places). A span found counts as right when it overlaps a span of
the same type that no other found span matched; precision is right / found, recall is matched / in the set.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

SET = Path(__file__).parent / "data" / "pii_sentences.jsonl"
TYPES = ("PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS")

Span = tuple[str, int, int]  # type, start, end


@dataclass(frozen=True)
class Sentence:
    text: str
    spans: tuple[Span, ...]


def load_set(path: Path = SET) -> list[Sentence]:
    sentences = []
    for line in path.read_text().splitlines():
        record = json.loads(line)
        text = record["text"]
        spans = tuple((kind, text.index(part), text.index(part) + len(part)) for kind, part in record["spans"])
        sentences.append(Sentence(text, spans))
    return sentences


@dataclass
class Score:
    expected: int = 0  # spans of this type in the set
    found: int = 0  # spans of this type the model gave
    right: int = 0  # found spans that matched an expected one

    @property
    def precision(self) -> float:
        return self.right / self.found if self.found else 1.0

    @property
    def recall(self) -> float:
        return self.right / self.expected if self.expected else 1.0


def score(sentences: list[Sentence], found: Iterable[Iterable[Span]]) -> dict[str, Score]:
    """Per type, over the whole set: `found` holds the spans given for each sentence, in order."""
    scores: dict[str, Score] = {kind: Score() for kind in TYPES}
    for sentence, given in zip(sentences, found, strict=True):
        unmatched = list(sentence.spans)
        for kind in [k for k, _, _ in sentence.spans]:
            scores[kind].expected += 1
        for kind, start, end in given:
            counted = scores.setdefault(kind, Score())
            counted.found += 1
            match = next((s for s in unmatched if s[0] == kind and s[1] < end and start < s[2]), None)
            if match is not None:
                counted.right += 1
                unmatched.remove(match)
    return scores


def table(scores: dict[str, Score]) -> str:
    """A Markdown table: type, spans in the set, found, precision, recall."""
    rows = ["| type | in the set | found | precision | recall |", "|---|---|---|---|---|"]
    for kind, s in scores.items():
        rows.append(f"| {kind} | {s.expected} | {s.found} | {s.precision:.2f} | {s.recall:.2f} |")
    return "\n".join(rows)
