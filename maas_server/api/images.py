"""Turning uploaded bytes into checked RGB images, before any model sees them, in bounded memory.

Two steps, so that a request's memory does not grow with its number of images:

1. ``check_images`` reads every header and refuses, each with its own 4xx and before decoding
   anything: encoded size (413), format (400, only common still-image formats), pixel count of
   one image (413, so a decompression bomb is never allocated; lower for the formats whose decoder
   needs more than 4 bytes per pixel) and of the whole request (413).
2. ``decode_images`` then decodes lazily, one image at a time, and shrinks each at once to a
   working size (``image_max_side``) as RGB, so that at most one full-size decoded image exists
   per request. JPEGs are decoded at reduced scale (``Image.draft``); other formats are decoded
   whole, then converted and reduced tile by tile, so that the full-size image exists only in its
   own mode (1 byte per pixel for a 1-bit or palette image), never as a full-size RGB copy. A
   corrupt file is a 400.

Freed memory goes back to the system (``ops.memory``) before each large image is decoded, and
after a request that decoded many pixels (the view does that once the response is sent).
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from flask import request
from pydantic import ValidationError

from ..errors import APIError, validation_error
from ._common import check_count, parse_json, read_body, state

if TYPE_CHECKING:
    from PIL import Image

# PIL is imported inside the functions that decode: importing the wire layer (maas_server.app) must
# not load image libraries before a request needs them (the app starts, and answers /health, sooner).

from pydantic import Field

from ..ops.memory import release_freed_memory
from .wire import RequestBody


class ImageRequest(RequestBody):
    """Any route that takes images: the JSON form; the multipart form carries the same fields as form fields
    plus file parts (api/images.py, read_image_request)."""

    model: str | None = None
    image: str | list[str] = Field(description="base64 image bytes, optionally as a data: URL")

    @property
    def images(self) -> list[str]:
        return [self.image] if isinstance(self.image, str) else list(self.image)


R = TypeVar("R", bound=ImageRequest)

ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"})
DECODED_BYTES = 4  # a decoded Pillow image takes at most 4 bytes per pixel (RGB is stored as RGBX)
TILE_SIDE = 1024  # converting 1024x1024 pixels at a time: a 4 MB RGB tile
# Hand freed memory back to the system each time a request has decoded this many pixels (16-64 MB
# of buffers; checked before each image, so always before a large one), once more before the
# model runs, and after the response of a request that decoded as many. glibc keeps freed heap
# pages resident in the freeing thread's arena: the holes that earlier images left between the
# prepared tensors rarely fit the next image's buffers, and the model's thread cannot use them at
# all, so without a trim they add up to the request's peak, and a worker would keep that peak for
# good. A trim costs ~3 ms when there is something to return, against ~100 ms to decode and
# prepare 4 M pixels.
RELEASE_AFTER_PIXELS = 4_000_000


@dataclass(frozen=True)
class ImageLimits:
    """What one image and one request may hold: ServerConfig's max_image_bytes, max_image_pixels, max_request_pixels."""

    max_bytes: int
    max_pixels: int
    max_request_pixels: int


@dataclass(frozen=True)
class CheckedImage:
    """An image whose header passed every check; its pixels are not decoded yet."""

    # The bytes, not the opened image: an opened file can hold decoder buffers (WebP: a full-size
    # frame) for as long as it is referenced, and the request references every image until it ends.
    data: bytes
    param: str
    size: tuple[int, int]
    decode_bytes_per_pixel: int = 4  # what decoding it takes at its peak (more for WebP, some JPEGs)

    @property
    def pixels(self) -> int:
        return self.size[0] * self.size[1]


def decode_base64_image(text: str, param: str) -> bytes:
    """Accept plain base64 or a `data:image/...;base64,` URL."""
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise APIError("image is not valid base64", param=param, code="invalid_image") from None


def check_images(blobs: Sequence[tuple[bytes, str]], limits: ImageLimits) -> list[CheckedImage]:
    """Read each `(data, param)` image's header and enforce every limit, without decoding any pixels."""
    images = [_open_checked(data, limits, param) for data, param in blobs]
    total = sum(image.pixels for image in images)
    if total > limits.max_request_pixels:
        raise APIError(f"the images hold {total} pixels in all, above the limit of {limits.max_request_pixels} per "
                       f"request (max_request_pixels); send fewer or smaller images per request",
                       status=413, param="image", code="request_pixels_too_large")
    return images


# The rest of an image call's peak over the worker's idle memory, beyond its largest decode
# (docs/server.md, "Memory per image request"): each prepared input tensor (0.6 MB at 224 px), the
# body's copies, and the model's batch (~70 MB measured for 4 ordinary images).
PREPARED_IMAGE_BYTES = 1 << 20
IMAGE_CALL_BYTES = 64 << 20


def reserve_image_memory(images: Sequence[CheckedImage]) -> None:
    """Reserve the call's estimated peak from the worker's memory budget (api/memory.py), before decoding."""
    largest = max(image.pixels * image.decode_bytes_per_pixel for image in images)
    encoded = sum(len(image.data) for image in images)
    peak = largest + PREPARED_IMAGE_BYTES * len(images) + 2 * encoded + IMAGE_CALL_BYTES
    state().memory.reserve(peak, f"decoding {len(images)} image(s)", param="image")


def decode_images(images: Sequence[CheckedImage], max_side: int) -> Iterator[Image.Image]:
    """Yield each image as RGB, shrunk to at most `max_side` on its longest side, decoding one at a time.

    Consume it lazily (the runner prepares each item as it is yielded) so that only one full-size
    decoded image exists at once.
    """
    decoded = 0  # pixels decoded since freed memory was last handed back
    for checked in images:
        if decoded + checked.pixels >= RELEASE_AFTER_PIXELS:
            release_freed_memory()
            decoded = 0
        decoded += checked.pixels
        yield _decode_shrunk(checked, max_side)
    if decoded >= RELEASE_AFTER_PIXELS:
        release_freed_memory()  # the model runs next, on its own thread: it cannot reuse what this one freed


def working_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """`size` scaled down, keeping its aspect ratio, so that its longest side is at most `max_side`."""
    width, height = size
    scale = max_side / max(width, height)
    if scale >= 1:
        return size
    return max(1, round(width * scale)), max(1, round(height * scale))


def to_rgb_at(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """`image.convert("RGB").resize(size)` for a smaller `size`, without a full-size RGB copy.

    Converts and box-reduces tile by tile (by the largest whole factor that stays at least `size`),
    then resamples the small result: the peak is one tile, whatever the image's mode.
    """
    from PIL import Image

    if image.size == size:
        return image.convert("RGB")
    factor = max(1, min(image.width // size[0], image.height // size[1]))
    reduced = _reduce_to_rgb(image, factor)
    return reduced if reduced.size == size else reduced.resize(size, Image.Resampling.BICUBIC)


def _open_checked(data: bytes, limits: ImageLimits, param: str) -> CheckedImage:
    from PIL import Image, UnidentifiedImageError

    if len(data) > limits.max_bytes:
        raise APIError(f"image is {len(data)} bytes, above the limit of {limits.max_bytes} (max_image_bytes)",
                       status=413, param=param, code="image_too_large")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))  # reads the header only
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        # PIL's own guard fires in open() for images far above any sane size.
        raise APIError(f"image has too many pixels (limit {limits.max_pixels}, max_image_pixels); downscale it",
                       status=413, param=param, code="image_too_large") from None
    except UnidentifiedImageError:
        raise APIError(f"cannot read the image; send one of: {', '.join(sorted(ALLOWED_FORMATS))}",
                       param=param, code="invalid_image") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise _corrupt(exc, param) from None
    with image:
        _check_header(image, limits.max_pixels, param)
        return CheckedImage(data, param, image.size, _decode_bytes_per_pixel(image))


def _check_header(image: Image.Image, max_pixels: int, param: str) -> None:
    if image.format not in ALLOWED_FORMATS:
        raise APIError(f"image format {image.format} is not supported; "
                       f"send one of: {', '.join(sorted(ALLOWED_FORMATS))}",
                       param=param, code="unsupported_image_format")
    width, height = image.size
    cost = _decode_bytes_per_pixel(image)
    limit = max_pixels * DECODED_BYTES // cost  # so that any image decodes in what an RGBA one of max_pixels takes
    if width * height > limit:
        why = "" if limit == max_pixels else \
            f" x {DECODED_BYTES}/{cost}: decoding {image.format} takes {cost} bytes per pixel"
        raise APIError(f"image is {width}x{height} = {width * height} pixels, above the limit of {limit} "
                       f"(max_image_pixels{why}); downscale it", status=413, param=param, code="image_too_large")
    if width == 0 or height == 0:
        raise APIError("image has no pixels", param=param, code="invalid_image")


def _decode_bytes_per_pixel(image: Image.Image) -> int:
    """Peak bytes per pixel while Pillow decodes this file: DECODED_BYTES, or more for two formats.

    WebP: libwebp's canvas and its copy of the previous frame, the frame handed over as bytes, and
    the image (~15 measured). JPEG: a progressive or multi-scan file makes libjpeg hold every DCT
    coefficient at once, 2 bytes per sample at any draft scale (4:4:4 colour 6, CMYK 8); the
    header does not say whether a file will, so every JPEG is counted so.
    """
    if image.format == "WEBP":
        return 16
    if image.format == "JPEG":
        layers: list[tuple[int, int, int, int]] = getattr(image, "layer", [])  # (id, h, v, table) per component
        if layers:
            h_max, v_max = max(h for _, h, _, _ in layers), max(v for _, _, v, _ in layers)
            samples = sum(h * v for _, h, v, _ in layers) / (h_max * v_max)
            return max(DECODED_BYTES, math.ceil(2 * samples))
    return DECODED_BYTES


def _decode_shrunk(checked: CheckedImage, max_side: int) -> Image.Image:
    from PIL import Image

    size = working_size(checked.size, max_side)
    try:
        # Closing frees the full-size pixels (and any decoder buffers) as soon as the small copy exists.
        with Image.open(io.BytesIO(checked.data)) as image:
            image.draft("RGB", size)  # JPEG: decoded at 1/2, 1/4 or 1/8 scale, still at least `size`; others: no-op
            image.load()
            return to_rgb_at(image, size)
    except (OSError, ValueError, SyntaxError) as exc:
        raise _corrupt(exc, checked.param) from None


def _reduce_to_rgb(image: Image.Image, factor: int) -> Image.Image:
    """`image.convert("RGB").reduce(factor)` computed tile by tile (the same: tiles are multiples of `factor`)."""
    from PIL import Image

    step = factor * max(1, TILE_SIDE // factor)
    width, height = image.size
    reduced = Image.new("RGB", (-(-width // factor), -(-height // factor)))
    for top in range(0, height, step):
        for left in range(0, width, step):
            tile = image.crop((left, top, min(left + step, width), min(top + step, height))).convert("RGB")
            reduced.paste(tile.reduce(factor), (left // factor, top // factor))
    return reduced


def _corrupt(exc: Exception, param: str) -> APIError:
    return APIError(f"the image is corrupt or truncated ({exc})", param=param, code="invalid_image")


def read_image_request(schema: type[R]) -> tuple[R, list[CheckedImage]]:
    """The request's fields and its checked (not yet decoded) images, from either form.

    A multipart form carries images as file parts and the schema's other fields as form fields
    (text: "3" is the number 3 there, where JSON must send a number); JSON carries base64 images.
    """
    config = state().config
    if request.mimetype == "multipart/form-data":
        body, blobs = _multipart(schema, config.max_image_bytes)
    else:
        body = parse_json(schema)
        check_count(len(body.images), "image", "image")
        blobs = [(decode_base64_image(text, f"image[{i}]"), f"image[{i}]") for i, text in enumerate(body.images)]
    limits = ImageLimits(max_bytes=config.max_image_bytes, max_pixels=config.max_image_pixels,
                         max_request_pixels=config.max_request_pixels)
    images = check_images(blobs, limits)
    reserve_image_memory(images)
    return body, images


def _multipart(schema: type[R], max_image_bytes: int) -> tuple[R, list[tuple[bytes, str]]]:
    read_body()  # the form is then parsed from the checked bytes (werkzeug reuses them)
    uploads = [f for _, f in request.files.items(multi=True)]
    check_count(len(uploads), "image file part", "image")
    allowed = set(schema.model_fields) - {"image"}
    # A part whose name cannot be decoded has no name (werkzeug gives None): it is an unknown field too.
    names: set[str | None] = set(request.form)  # werkzeug's types say str; an undecodable part name is None
    unknown = sorted({name or "" for name in names} - allowed)
    if unknown:
        raise APIError(f"unknown form field(s): {', '.join(unknown)}", status=400, param=unknown[0],
                       code="invalid_value")
    fields = {k: v for k, v in request.form.items() if k in allowed}
    try:
        body = schema.model_validate({**fields, "image": "-"}, strict=False)
    except ValidationError as exc:
        raise validation_error(exc) from None
    return body, [(f.read(max_image_bytes + 1), f"image[{i}]") for i, f in enumerate(uploads)]
