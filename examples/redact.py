"""Find personal data (names, e-mail addresses, phone and card numbers...) in a few texts and redact it.

    make serve                                   # in another terminal
    python examples/redact.py ["Some text." ...] [--mask]

Prints each span found (type, score and the characters it covers), then the text with every span
replaced by its type (`<EMAIL_ADDRESS>`), or with `--mask` by asterisks. The server keeps none of the
texts (docs/api.md).
"""

from __future__ import annotations

import sys
from typing import Literal

import maas_client as maas

SAMPLES = [
    "Mail Ada Lovelace at ada@example.com.",
    "Call me on 212-555-0123 or pay with card 4111 1111 1111 1111.",
]


def main() -> None:
    args = sys.argv[1:]
    style: Literal["type", "mask"] = "mask" if "--mask" in args else "type"
    texts = [a for a in args if a != "--mask"] or SAMPLES
    with maas.Client() as client:
        result = client.redact(texts, style=style)
    for text, item in zip(texts, result.data):
        for span in item.entities:
            print(f"  {span.type:<14} {span.score:.2f}  {text[span.start:span.end]}")
        print(f"{item.redacted}\n")
    print(f"({result.model})")


if __name__ == "__main__":
    main()
