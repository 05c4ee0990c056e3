"""How alike some images are: the cosine similarity of their embeddings, as a matrix.

    make serve                                   # in another terminal
    python examples/image_similarity.py [image.jpg image.jpg ...]

Without arguments, the photos in examples/data/, the astronaut and her mirror image among them. A photo
and its mirror image lie close, unrelated photos far apart (0.95-0.98 against 0.09-0.13 for the cat
photo: docs/tasks-ocr-srl-scene.md). The vectors are an image classifier's pooled features, of unit
length, so a dot product is the cosine.
"""

from __future__ import annotations

import sys
from pathlib import Path

import maas_client as maas

DATA = Path(__file__).parent / "data"  # CC0 and public-domain photos (examples/data/README.md)
SAMPLES = [DATA / name for name in ("astronaut.jpg", "astronaut-mirrored.jpg", "cat.jpg", "coffee.jpg")]


def main() -> None:
    images = [Path(arg) for arg in sys.argv[1:]] or SAMPLES
    with maas.Client() as client:
        result = client.embed_images(images)
    vectors = result.vectors
    names = [image.stem[:12] for image in images]
    print(f"({result.model}, {len(vectors[0])} dimensions)")
    print(" " * 12 + "".join(f"{name:>13}" for name in names))
    for name, a in zip(names, vectors):
        print(f"{name:<12}" + "".join(f"{sum(x * y for x, y in zip(a, b)):13.3f}" for b in vectors))


if __name__ == "__main__":
    main()
