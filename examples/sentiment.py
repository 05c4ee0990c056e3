"""The sentiment of a few texts (negative, neutral or positive), and with --why, which words decided it.

    python examples/sentiment.py ["Some text." ...]
    python examples/sentiment.py --why "The food was great but the service was slow."

Without a text, a few sentences of its own. Without `labels`, `classify_text` goes to the server's
sentiment model (`minilm-sentiment` by default; docs/sentiment.md); with `labels=[...]` it would be
zero-shot instead. In a notebook, a result with `explain=True` shows its tokens shaded.
"""

from __future__ import annotations

import sys

import maas_client as maas

SAMPLES = [
    "I love it",
    "The package arrived on Tuesday.",
    "It broke after two days, what a waste of money.",
]


def weighed(tokens: list[maas.TokenWeight]) -> str:
    """Each token with its weight for the label: `love(+1.00) it(-0.05)`."""
    return " ".join(f"{t.text}({t.weight:+.2f})" for t in tokens)


def main() -> None:
    args = sys.argv[1:]
    why = "--why" in args
    texts = [a for a in args if a != "--why"] or SAMPLES
    with maas.Client() as client:
        result = client.classify_text(texts, explain=why)
    for text, item in zip(texts, result.data):
        best = item.labels[0]
        print(f"{best.label:<8} {best.score:.2f}  {text}")
        if item.explanation is not None and item.explanation.tokens:
            print(f"         why: {weighed(item.explanation.tokens)}")
    print(f"({result.model})")


if __name__ == "__main__":
    main()
