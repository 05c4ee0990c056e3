"""Find the named entities (people, places, dates...) of a text and mark them inline.

    python examples/entities.py ["Some text." ...]
    python examples/entities.py --tokens "Angela Merkel visited Paris in 2019."   # one line per token

Without a text, a few sentences of its own. In a notebook, `client.extract_entities(...)` on its
own line shows the same marking in colour.
"""

from __future__ import annotations

import sys

import maas_client as maas

SAMPLES = [
    "Angela Merkel visited Paris in 2019.",
    "Apple is looking at buying U.K. startup for $1 billion.",
    "Ada Lovelace met Charles Babbage in London in 1833.",
]


def marked(text: str, entities: list[maas.Entity]) -> str:
    """The text with each entity written as [text](LABEL)."""
    out, position = [], 0
    for entity in entities:
        out += [text[position:entity.start], f"[{entity.text}]({entity.label})"]
        position = entity.end
    return "".join(out) + text[position:]


def main() -> None:
    args = sys.argv[1:]
    aggregation = "none" if "--tokens" in args else "simple"
    texts = [a for a in args if a != "--tokens"] or SAMPLES
    with maas.Client() as client:
        result = client.extract_entities(texts, aggregation=aggregation)
    for text, item in zip(texts, result.data):
        print(marked(text, item.entities))
    if result.usage is not None:
        print(f"({result.model}, {result.usage.total_tokens} tokens)")


if __name__ == "__main__":
    main()
