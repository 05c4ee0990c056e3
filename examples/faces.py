"""Find the faces in a photo, then ask whether two photos show the same person.

    python examples/faces.py [photo.jpg [other.jpg]]

Without arguments: scikit-image's astronaut (examples/data/), compared with a mirrored copy of herself and
with the cameraman. Faces are personal data: the server keeps nothing of them
(docs/api.md); use photos you may process.
"""

from __future__ import annotations

import sys
from pathlib import Path

import maas_client as maas

DATA = Path(__file__).parent / "data"  # CC0 and public-domain photos (examples/data/README.md)
SAMPLES = [DATA / "astronaut.jpg", DATA / "astronaut-mirrored.jpg", DATA / "cameraman.jpg"]


def main() -> None:
    with maas.Client() as client:
        photos = [Path(arg) for arg in sys.argv[1:3]] or SAMPLES
        found = client.detect_faces(photos[0])
        print(f"{photos[0].name} ({found.model}): {len(found.faces)} face(s)")
        for face in found.faces:
            box = face.box
            print(f"  {face.score:.3f} at ({box.x1:.0f}, {box.y1:.0f}), {box.width:.0f} x {box.height:.0f} pixels")
        for other in photos[1:]:
            same = client.compare_faces(photos[0], other)
            verdict = "the same person" if same.same_person else "different people"
            print(f"{photos[0].name} vs {other.name}: distance {same.distance:.2f} -> {verdict} "
                  f"(threshold {same.threshold})")


if __name__ == "__main__":
    main()
