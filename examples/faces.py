"""Find the faces in a photo, then ask whether two photos show the same person.

    python examples/faces.py [photo.jpg [other.jpg]]

Without arguments: scikit-image's astronaut, compared with a mirrored copy of herself and with the cameraman
(scikit-image and Pillow are in the `test` extra). Faces are personal data: the server keeps nothing of them
(docs/api.md); use photos you may process.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import maas_client as maas


def sample_photos(directory: str) -> list[Path]:
    """The astronaut, the astronaut mirrored, and the cameraman, written as JPEGs."""
    from PIL import Image, ImageOps
    from skimage import data

    astronaut = Image.fromarray(data.astronaut())
    photos = {"astronaut": astronaut, "astronaut-mirrored": ImageOps.mirror(astronaut),
              "cameraman": Image.fromarray(data.camera())}
    paths = []
    for name, image in photos.items():
        paths.append(Path(directory) / f"{name}.jpg")
        image.save(paths[-1], quality=90)
    return paths


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, maas.Client() as client:
        photos = [Path(arg) for arg in sys.argv[1:3]] or sample_photos(tmp)
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
