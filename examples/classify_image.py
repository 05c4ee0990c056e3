"""Classify an image file; without an argument, a picture of a cat from scikit-image.

    python examples/classify_image.py [path/to/image.jpg]

The default image needs scikit-image and Pillow (both in the `test` extra).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import maas_client as maas


def chelsea_jpeg(directory: str) -> Path:
    """scikit-image's sample photo of Chelsea the cat, written as a JPEG."""
    from PIL import Image
    from skimage import data

    path = Path(directory) / "chelsea.jpg"
    Image.fromarray(data.chelsea()).save(path, quality=90)
    return path


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, maas.Client() as client:
        path = Path(sys.argv[1]) if len(sys.argv) > 1 else chelsea_jpeg(tmp)
        result = client.classify_image(path, top_k=5)
    print(f"{path.name} ({result.model}):")
    for item in result.labels:
        print(f"{item.score:6.3f}  {'#' * round(item.score * 40)}  {item.label}")


if __name__ == "__main__":
    main()
