"""Read the text in an image: each line with the recogniser's confidence, then the whole text.

    make serve                                   # in another terminal
    python examples/read_text.py [path/to/image.png]

Without an argument, a small invoice drawn with Pillow (in the `test` extra). The server's default
`pp-ocrv6` reads printed text; handwriting is untested (docs/tasks-ocr-srl-scene.md).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import maas_client as maas

INVOICE = ["Invoice 2024-117", "Total due: $1,284.50", "Ship to 42 Baker Street, London"]


def invoice() -> Any:
    """Three lines of black text on a white 480x150 sheet (a Pillow image; the client uploads it as PNG)."""
    from PIL import Image, ImageDraw, ImageFont

    sheet = Image.new("RGB", (480, 150), "white")
    draw, font = ImageDraw.Draw(sheet), ImageFont.load_default(size=22)
    for row, line in enumerate(INVOICE):
        draw.text((20, 15 + row * 42), line, fill="black", font=font)
    return sheet


def main() -> None:
    image = Path(sys.argv[1]) if len(sys.argv) > 1 else invoice()
    with maas.Client() as client:
        result = client.read_text(image)
    print(f"{image.name if isinstance(image, Path) else 'the invoice'} ({result.model}):")
    for line in result.lines:
        print(f"{line.score:6.3f}  {line.text}")
    print(f"\n{result.text}")


if __name__ == "__main__":
    main()
