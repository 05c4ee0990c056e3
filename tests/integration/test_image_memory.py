"""A worker's memory stays bounded for the worst image requests the limits admit (docs/server.md)."""

from __future__ import annotations

import io
import time

import pytest
import requests
from PIL import Image

from maas_server.testing import ServerProcess, memory_bytes, reset_peak_rss

MB = 1 << 20
BOUND_MB = 500  # docs/server.md, "Memory per image request": the documented peak over idle


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _classify(url: str, images: list[bytes]) -> requests.Response:
    files = [("image", (f"{i}.png", data, "image/png")) for i, data in enumerate(images)]
    return requests.post(f"{url}/v1/classify/image", files=files, timeout=300)


@pytest.mark.integration
def test_four_sub_limit_bombs_stay_within_the_memory_bound(server: ServerProcess) -> None:
    # 5 KB each, 6320 x 6320 = 39.9 M pixels (under max_image_pixels): 160 MB each as RGB.
    bomb = _png(Image.new("1", (6320, 6320)))
    (worker,) = server.worker_pids()
    assert _classify(server.url, [_png(Image.new("RGB", (320, 240), "teal"))] * 4).status_code == 200  # warm
    idle = memory_bytes(worker)["rss"]
    reset_peak_rss(worker)
    response = _classify(server.url, [bomb] * 4)
    assert response.status_code == 200 and len(response.json()["data"]) == 4
    peak = memory_bytes(worker)["peak"] - idle
    assert peak < BOUND_MB * MB, f"peak {peak / MB:.0f} MB over idle"
    # ...and what the request freed goes back to the system (once the response is sent).
    deadline = time.monotonic() + 10
    while memory_bytes(worker)["rss"] - idle > 100 * MB and time.monotonic() < deadline:
        time.sleep(0.2)
    assert memory_bytes(worker)["rss"] - idle <= 100 * MB
