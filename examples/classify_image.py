"""Classify an image file; without an argument, the photo of a cat in examples/data/.

    python examples/classify_image.py [path/to/image.jpg]
"""

from __future__ import annotations

import sys
from pathlib import Path

import maas_client as maas

CAT = Path(__file__).parent / "data" / "cat.jpg"  # scikit-image's Chelsea, CC0 (examples/data/README.md)


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else CAT
    with maas.Client() as client:
        result = client.classify_image(path, top_k=5)
    print(f"{path.name} ({result.model}):")
    for item in result.labels:
        print(f"{item.score:6.3f}  {'#' * round(item.score * 40)}  {item.label}")


if __name__ == "__main__":
    main()
