"""Embed a few sentences and find the one nearest to a query.

    python examples/embed_nearest_neighbour.py "How do I bake bread?"
"""

from __future__ import annotations

import sys

import maas_client as maas

SENTENCES = [
    "The cat sat on the mat.",
    "Knead the dough and let it rise for an hour before baking.",
    "The stock market fell sharply on Tuesday.",
    "A good night's sleep improves memory.",
    "The train to Paris leaves at nine.",
]


def dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b))


def main() -> None:
    query = sys.argv[1] if len(sys.argv) > 1 else "How do I make bread?"
    with maas.Client() as client:
        vectors = client.embed([query, *SENTENCES]).vectors
    # maas vectors are L2-normalized, so the dot product is the cosine similarity.
    scores = sorted(((dot(vectors[0], v), s) for v, s in zip(vectors[1:], SENTENCES)), reverse=True)
    print(f"query: {query}\n")
    for score, sentence in scores:
        print(f"{score:6.3f}  {sentence}")
    print(f"\nnearest: {scores[0][1]}")


if __name__ == "__main__":
    main()
