"""The default detector (YOLOv3-tiny) over real HTTP: a collage of scikit-image's pictures, each found where it lies."""

from __future__ import annotations

import io
from typing import Any

import pytest
import requests
from PIL import Image

from tests.server.test_darknet import _collage


def _post(server_url: str, image: Image.Image, fmt: str) -> dict[str, Any]:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    r = requests.post(f"{server_url}/v1/detect/objects", timeout=120,
                      files=[("image", (f"collage.{fmt.lower()}", buffer.getvalue()))])
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("scale", [1, 2])  # 2: an 1800x1200 JPEG, shrunk to image_max_side and scaled back
def test_the_collage_pictures_are_found_where_they_were_pasted(server_url: str, scale: int) -> None:
    sheet, regions = _collage()
    image = sheet.resize((sheet.width * scale, sheet.height * scale), Image.Resampling.BICUBIC)
    body = _post(server_url, image, "PNG" if scale == 1 else "JPEG")
    assert body["model"] == "yolov3-tiny"
    found = body["data"][0]
    assert (found["width"], found["height"]) == image.size
    for label, region in regions.items():
        x1, y1, x2, y2 = (v * scale for v in region)
        boxes = [o["box"] for o in found["objects"] if o["label"] == label]
        assert boxes, f"no {label} in {found['objects']}"
        best = boxes[0]  # best first
        cx, cy = (best["x1"] + best["x2"]) / 2, (best["y1"] + best["y2"]) / 2
        assert x1 <= cx <= x2 and y1 <= cy <= y2, (label, best, (x1, y1, x2, y2))
