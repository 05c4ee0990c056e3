"""Peak worker memory for the worst image requests the limits admit; prints one table.

    .venv/bin/python benchmarks/image_memory.py                      # this checkout's server
    .venv/bin/python benchmarks/image_memory.py --code /tmp/before   # a server from another checkout
    .venv/bin/python benchmarks/image_memory.py --only 1bit-png,many-jpeg

Starts the server with the default image model only and sends each request once (multipart)
to a fresh server, and reads the gunicorn worker's resident memory from /proc: its high-water mark
is reset before the request (``clear_refs``), so "peak +MB" is the request's own peak over the
idle RSS, and "kept +MB" what the worker still held after answering. Linux only.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import requests
from PIL import Image

from maas_server.testing import ServerProcess, memory_bytes, reset_peak_rss

sys.path.insert(0, str(Path(__file__).parent))
from run import IMG_MODEL, config_with  # benchmarks/ is not a package: imported from its folder

SIDE = 6320  # 6320 x 6320 = 39.9 M pixels: just under the default max_image_pixels (40 M)
MB = 1 << 20
SETTLE_S = 1.0


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def smooth(mode: str, size: tuple[int, int]) -> Image.Image:
    """Smooth colour fields (random 8x8 pixels, upscaled): structure, yet far below max_image_bytes."""
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).resize(size, Image.Resampling.BILINEAR)
    if mode == "P":  # undithered: flat bands, as a GIF compresses well
        return image.quantize(64, dither=Image.Dither.NONE)
    return image.convert(mode)


def scenarios() -> dict[str, Callable[[], list[bytes]]]:
    """name -> the images of one request (built lazily: some take seconds to encode).

    Each kind at about its own limit: max_image_pixels, less for the formats whose decoder needs
    more than 4 bytes per pixel (api/images.py): WebP 1/4 of it, a 4:4:4 JPEG 2/3, a CMYK JPEG 1/2.
    """
    square = (SIDE, SIDE)
    many = smooth("RGB", (1000, 976))  # 256 of them: max_request_pixels (250 M)
    return {
        "ordinary jpeg x4 (320x240)": lambda: [encode(smooth("RGB", (320, 240)), "JPEG")] * 4,
        "1bit-png x4": lambda: [encode(Image.new("1", square), "PNG")] * 4,
        "1bit-png x8 (6000^2)": lambda: [encode(Image.new("1", (6000, 6000)), "PNG")] * 8,
        "rgb-png x4": lambda: [encode(smooth("RGB", square), "PNG")] * 4,
        "rgba-png x4": lambda: [encode(smooth("RGBA", square), "PNG")] * 4,
        "gray16-png x4": lambda: [encode(Image.new("I;16", square, 40000), "PNG")] * 4,
        "palette-gif x4": lambda: [encode(smooth("P", square), "GIF")] * 4,
        "tiff-lzw x4": lambda: [encode(Image.new("RGB", square, (200, 120, 40)), "TIFF", compression="tiff_lzw")] * 4,
        "jpeg x4": lambda: [encode(smooth("RGB", square), "JPEG", quality=90)] * 4,
        "progressive-jpeg x4 (5160^2)": lambda: [encode(smooth("RGB", (5160, 5160)), "JPEG", quality=90,
                                                        progressive=True, subsampling=0)] * 4,
        "cmyk-jpeg x4 (4470^2)": lambda: [encode(smooth("CMYK", (4470, 4470)), "JPEG", quality=90,
                                                 progressive=True, subsampling=0)] * 4,
        "webp x4 (3160^2)": lambda: [encode(smooth("RGB", (3160, 3160)), "WEBP", lossless=True)] * 4,
        "many-jpeg 256 x 1000x976": lambda: [encode(many, "JPEG", quality=75)] * 256,
        "mixed 255 jpeg + 1 rgb-png": lambda: [encode(smooth("RGB", (900, 900)), "JPEG", quality=75)] * 255
                                              + [encode(smooth("RGB", square), "PNG")],
        "webp x1 (6320^2, refused)": lambda: [encode(smooth("RGB", square), "WEBP", lossless=True)],
    }


def classify(url: str, images: list[bytes]) -> int:
    files = [("image", (f"{i}.img", data, "application/octet-stream")) for i, data in enumerate(images)]
    return requests.post(f"{url}/v1/classify/image", files=files, data={"model": IMG_MODEL}, timeout=600).status_code


def measure(url: str, pid: int, images: list[bytes]) -> tuple[int, float, float, float, float]:
    """-> (status, idle RSS MB, peak growth MB, kept growth MB, seconds) for one request."""
    # Idle = after one ordinary request: the model's first full-size batches grow the worker once,
    # and that is not what the image request costs.
    classify(url, [encode(smooth("RGB", (320, 240)), "JPEG")] * 8)
    time.sleep(SETTLE_S)
    before = memory_bytes(pid)["rss"]
    reset_peak_rss(pid)
    start = time.perf_counter()
    status = classify(url, images)
    seconds = time.perf_counter() - start
    time.sleep(SETTLE_S)  # memory is handed back after the response is sent
    after = memory_bytes(pid)
    return status, before / MB, (after["peak"] - before) / MB, (after["rss"] - before) / MB, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--code", help="run the server from this checkout (e.g. `git archive` of an older commit)")
    parser.add_argument("--only", help="comma-separated scenario name prefixes")
    args = parser.parse_args()
    base = None
    if args.code:  # the server subprocess imports maas_server (and its default config) from there
        os.environ["PYTHONPATH"] = str(Path(args.code).resolve())
        os.chdir(args.code)  # `python -m` puts the working directory first on the server's sys.path
        base = Path("maas_server/default_config.toml").read_text()
    chosen = {name: build for name, build in scenarios().items()
              if not args.only or any(name.startswith(p) for p in args.only.split(","))}
    print(f"{'request':<28} {'status':>6} {'idle MB':>8} {'peak +MB':>9} {'kept +MB':>9} {'s':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        config = config_with([IMG_MODEL], Path(tmp), base=base)
        for name, build in chosen.items():
            images = build()
            server = ServerProcess(config)  # a fresh worker each time: what one request leaves behind skews the next
            with server as url:
                (pid,) = server.worker_pids()  # one worker (the default)
                status, idle, peak, kept, seconds = measure(url, pid, images)
            print(f"{name:<28} {status:>6} {idle:>8.0f} {peak:>9.0f} {kept:>9.0f} {seconds:>6.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
