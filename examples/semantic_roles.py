"""Who did what to whom, when and where: the semantic roles of each verb in a few sentences.

    make serve                                   # in another terminal
    python examples/semantic_roles.py ["Some sentence." ...]

Prints each verb's bracketed description (AllenNLP's), then its arguments (ARG0 the doer, ARG1 what
is acted on, ARGM-TMP when...). The server's default finds them by rules over a syntactic parse, not
with a trained SRL model: the `method` line says which (docs/api.md).
"""

from __future__ import annotations

import sys

import maas_client as maas

SAMPLES = [
    "The window was broken by the boy yesterday.",
    "Mary gave John a book in the library.",
]


def main() -> None:
    texts = sys.argv[1:] or SAMPLES
    with maas.Client() as client:
        result = client.label_roles(texts)
    for text, item in zip(texts, result.data):
        print(f"{text}  ({item.method})")
        for verb in item.verbs:
            print(f"  {verb.description}")
            for argument in verb.arguments:
                print(f"    {argument.role:<9} {argument.text}")
    print(f"({result.model})")


if __name__ == "__main__":
    main()
