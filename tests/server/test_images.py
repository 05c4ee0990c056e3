"""Images in bounded memory: the per-request pixel budget, decoding one image at a time, and shrinking early.

The app's settings (conftest.tiny_config): max_image_pixels 1 M, max_request_pixels 3 M, max_image_bytes
200 KB, image_max_side 128.
"""

from __future__ import annotations

import dataclasses
import io
import struct
import zlib
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient
from PIL import Image, JpegImagePlugin

from maas_server.api import classify, images
from maas_server.api.images import ImageLimits, check_images, decode_images, to_rgb_at, working_size

LIMITS = ImageLimits(max_bytes=10_000_000, max_pixels=40_000_000, max_request_pixels=100_000_000)


def _encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _photo(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """Smooth colour fields: some structure to resample, yet small when encoded."""
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (6, 6, 3), dtype=np.uint8)).resize(size, Image.Resampling.BILINEAR)
    if mode == "P":  # undithered: flat areas, as in a scan or a diagram
        return image.quantize(32, dither=Image.Dither.NONE)
    return image.convert(mode, dither=Image.Dither.NONE)


def _header_only_png(width: int, height: int) -> bytes:
    """A PNG with a header but almost no pixel data: decoding it fails, only a header check can pass it."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b"")


def _post(client: FlaskClient, *blobs: bytes, model: str = "tiny-timm") -> Any:
    files = [(io.BytesIO(blob), f"{i}.img") for i, blob in enumerate(blobs)]
    return client.post("/v1/classify/image", data={"model": model, "image": files}, content_type="multipart/form-data")


# -- the request's pixel budget

def test_request_over_the_pixel_budget_is_413_before_any_image_is_decoded(client: FlaskClient) -> None:
    # Each header-only image is within max_image_pixels and would fail to decode (400): the 413
    # proves the request was refused from the headers alone.
    refused = _post(client, *[_header_only_png(1000, 1000)] * 4)  # 4 M > 3 M
    assert refused.status_code == 413
    error = refused.json["error"]
    assert error["code"] == "request_pixels_too_large" and "max_request_pixels" in error["message"]
    admitted = _post(client, *[_header_only_png(1000, 1000)] * 3)  # 3 M: within budget, then decoded
    assert admitted.status_code == 400 and admitted.json["error"]["code"] == "invalid_image"


def test_request_within_the_budget_is_classified(client: FlaskClient) -> None:
    response = _post(client, *[_encode(Image.new("RGB", (1000, 1000), "orange"), "PNG")] * 3)
    assert response.status_code == 200 and len(response.json["data"]) == 3


@pytest.mark.parametrize("fmt, options, size, limit", [
    ("WEBP", {"lossless": True}, (600, 600), 250_000),            # 16 bytes per pixel to decode: 1 M x 4/16
    ("JPEG", {"subsampling": 0}, (900, 900), 666_666),             # 4:4:4, its DCT coefficients: 6 bytes per pixel
])
def test_formats_whose_decoder_needs_more_memory_have_a_lower_pixel_limit(
        client: FlaskClient, fmt: str, options: dict[str, Any], size: tuple[int, int], limit: int) -> None:
    response = _post(client, _encode(_photo(size), fmt, **options))
    assert response.status_code == 413 and response.json["error"]["code"] == "image_too_large"
    assert f"limit of {limit}" in response.json["error"]["message"]


def test_a_subsampled_jpeg_keeps_the_full_pixel_limit(client: FlaskClient) -> None:
    assert _post(client, _encode(_photo((900, 900)), "JPEG", subsampling=2)).status_code == 200  # 4:2:0


# -- decoding: one image at a time, shrunk at once

def test_images_are_decoded_lazily_one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    checked = check_images([(_encode(_photo((64, 48)), "PNG"), f"image[{i}]") for i in range(3)], LIMITS)
    opened: list[int] = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda fp: opened.append(1) or real_open(fp))
    decoded = decode_images(checked, 1024)
    assert opened == []
    next(decoded)
    assert len(opened) == 1


def test_the_runner_prepares_each_image_before_the_next_is_decoded(client: FlaskClient,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    real_decode = images._decode_shrunk
    monkeypatch.setattr(images, "_decode_shrunk", lambda *a: events.append("decode") or real_decode(*a))
    runner = client.application.extensions["maas"].registry.get("tiny-timm").runner
    spec = runner.methods["classify-image"]
    spied = dataclasses.replace(spec, prepare=lambda image: events.append("prepare") or spec.prepare(image))
    monkeypatch.setitem(runner.methods, "classify-image", spied)
    assert _post(client, *[_encode(_photo((64, 48)), "PNG")] * 3).status_code == 200
    assert events == ["decode", "prepare"] * 3


def test_working_size_bounds_the_longest_side_and_keeps_the_aspect_ratio() -> None:
    assert working_size((6000, 4000), 1024) == (1024, 683)
    assert working_size((300, 40000), 1024) == (8, 1024)
    assert working_size((800, 600), 1024) == (800, 600)  # small images are left alone
    assert working_size((100_000, 1), 1024) == (1024, 1)


def test_a_large_jpeg_is_decoded_at_reduced_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    decoded_sizes: list[tuple[int, int]] = []
    real_load = JpegImagePlugin.JpegImageFile.load
    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load",
                        lambda self: decoded_sizes.append(self.size) or real_load(self))
    checked = check_images([(_encode(_photo((2400, 1600)), "JPEG"), "image")], LIMITS)
    (image,) = decode_images(checked, 256)
    assert image.size == (256, 171) and image.mode == "RGB"
    assert decoded_sizes[0] == (300, 200)  # 1/8 scale: the smallest that stays at least 256x171


@pytest.mark.parametrize("mode", ["1", "P", "L", "LA", "RGBA", "CMYK", "I;16", "I", "F"])
def test_no_full_size_rgb_copy_is_made_whatever_the_mode(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    source = _photo((1500, 1100), mode)
    rgb_sizes: list[int] = []
    real_convert = Image.Image.convert

    def spy(self: Image.Image, target: str | None = None, *args: Any, **kwargs: Any) -> Image.Image:
        if target == "RGB":
            rgb_sizes.append(self.width * self.height)
        return real_convert(self, target, *args, **kwargs)

    monkeypatch.setattr(images, "TILE_SIDE", 256)
    monkeypatch.setattr(Image.Image, "convert", spy)
    shrunk = to_rgb_at(source, working_size(source.size, 500))
    assert shrunk.size == (500, 367) and shrunk.mode == "RGB"
    assert max(rgb_sizes) <= 256 * 256


@pytest.mark.parametrize("mode", ["1", "P", "LA", "RGBA", "CMYK", "I;16"])
def test_tile_by_tile_shrinking_equals_converting_the_whole_image(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "TILE_SIDE", 100)  # several tiles, the last ones partial
    source = _photo((1013, 517), mode)
    assert images._reduce_to_rgb(source, 3).tobytes() == source.convert("RGB").reduce(3).tobytes()
    # ...and the final size is as good as resampling the whole RGB image at once (what the model did before)
    direct = np.asarray(source.convert("RGB").resize((400, 204), Image.Resampling.BICUBIC), dtype=int)
    assert np.abs(np.asarray(to_rgb_at(source, (400, 204)), dtype=int) - direct).mean() < 2


@pytest.mark.parametrize("mode, fmt", [("1", "PNG"), ("P", "GIF"), ("LA", "PNG"), ("RGBA", "PNG"), ("CMYK", "JPEG"),
                                       ("I;16", "PNG"), ("RGB", "WEBP"), ("RGB", "TIFF"), ("P", "BMP")])
def test_every_mode_is_shrunk_and_classified(client: FlaskClient, mode: str, fmt: str) -> None:
    options = {"compression": "tiff_adobe_deflate"} if fmt == "TIFF" else {}
    response = _post(client, _encode(_photo((300, 200), mode), fmt, **options), model="tiny-resnet")  # > image_max_side
    assert response.status_code == 200, response.json


# -- memory goes back to the system after a large request

def test_freed_memory_is_released_after_a_large_request_only(client: FlaskClient,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    released: list[int] = []
    monkeypatch.setattr(classify, "release_freed_memory", lambda: released.append(1))
    monkeypatch.setattr(classify, "RELEASE_AFTER_PIXELS", 100_000)
    small, large = _encode(_photo((100, 100)), "PNG"), _encode(_photo((400, 300)), "PNG")
    _post(client, small).close()
    assert released == []
    response = _post(client, large)
    assert released == []  # not while the request is still answering
    response.close()
    assert released == [1]
