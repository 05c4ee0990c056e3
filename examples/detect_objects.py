"""Find objects in an image file; without an argument, in a collage of scikit-image's pictures.

    python examples/detect_objects.py [path/to/image.jpg] [--draw boxes.png]

`--draw` writes a copy of the image with the boxes drawn on it (needs Pillow). The default image
needs scikit-image and Pillow (both in the `test` extra). The server's default detector is
YOLOv3-tiny: it does best on COCO objects that fill a good part of the picture (docs/api.md).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import maas_client as maas


def collage_png(directory: str) -> Path:
    """A person, a cat, a motorbike and a cup, each in a quarter of a white 900x600 sheet."""
    from PIL import Image
    from skimage import data

    sheet = Image.new("RGB", (900, 600), "white")
    pictures = [data.astronaut(), data.chelsea(), data.stereo_motorcycle()[0], data.coffee()]
    for i, array in enumerate(pictures):
        picture = Image.fromarray(array)
        picture.thumbnail((450, 300))
        sheet.paste(picture, ((i % 2) * 450, (i // 2) * 300))
    path = Path(directory) / "collage.png"
    sheet.save(path)
    return path


def draw(path: Path, result: maas.ObjectDetections, out: Path) -> None:
    """Save a copy of the image with each box and its label drawn on it."""
    from PIL import Image, ImageDraw

    with Image.open(path) as image:
        canvas = image.convert("RGB")
    pen = ImageDraw.Draw(canvas)
    for found in result.objects:
        box = found.box
        pen.rectangle((box.x1, box.y1, box.x2, box.y2), outline="red", width=3)
        pen.text((box.x1 + 4, box.y1 + 2), f"{found.label} {found.score:.2f}", fill="red")
    canvas.save(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("image", nargs="?", type=Path, help="an image file (default: the collage)")
    parser.add_argument("--draw", type=Path, help="write the image with its boxes here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, maas.Client() as client:
        path = args.image or collage_png(tmp)
        result = client.detect_objects(path)
        print(f"{path.name} ({result.model}): {len(result.objects)} object(s)")
        for found in result.objects:
            box = found.box
            print(f"{found.score:6.3f}  {found.label:<12} at ({box.x1:.0f}, {box.y1:.0f})-({box.x2:.0f}, {box.y2:.0f})")
        if args.draw:
            draw(path, result, args.draw)
            print(f"drawn: {args.draw}")


if __name__ == "__main__":
    main()
