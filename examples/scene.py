"""What kind of place a photo shows: the top level (indoor, outdoor natural, outdoor man-made), a finer
label, how it was found and the clues behind it.

    make serve                                   # in another terminal
    python examples/scene.py [photo.jpg ...]

Without an argument, the espresso and cat photos in examples/data/. Without a scene model configured,
the server reads the image classifier's ImageNet classes and the detector's COCO objects (`method:
heuristic`): the espresso comes out an indoor cafe, and the cat close-up gives no clue of a place
(docs/tasks-ocr-srl-scene.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

import maas_client as maas

DATA = Path(__file__).parent / "data"  # CC0 and public-domain photos (examples/data/README.md)
SAMPLES = [DATA / "coffee.jpg", DATA / "cat.jpg"]


def main() -> None:
    photos = [Path(arg) for arg in sys.argv[1:]] or SAMPLES
    with maas.Client() as client:
        result = client.classify_scene(photos)
    print(f"({result.model}{f' and {result.detector}' if result.detector else ''})")
    for photo, item in zip(photos, result.data):
        scene = f"{item.top_level} / {item.label} ({item.score:.2f})" if item.label else "no telling clue"
        print(f"{photo.name}: {scene}, {item.method}")
        for clue in item.evidence:
            print(f"  {clue.source:<9} {clue.score:.2f}  {clue.label}")


if __name__ == "__main__":
    main()
