"""Turning uploaded bytes into a checked RGB image, before any model sees it.

Checks, each with its own 4xx: encoded size (413), format (400, only common still-image formats),
pixel count read from the header *before* decoding, so a decompression bomb is refused without
allocating it (413), and a corrupt file (400).
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings

from PIL import Image, UnidentifiedImageError

from ..errors import APIError

ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"})


def decode_base64_image(text: str, param: str) -> bytes:
    """Accept plain base64 or a `data:image/...;base64,` URL."""
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise APIError("image is not valid base64", param=param, code="invalid_image") from None


def open_image(data: bytes, *, max_bytes: int, max_pixels: int, param: str = "image") -> Image.Image:
    if len(data) > max_bytes:
        raise APIError(f"image is {len(data)} bytes, above the limit of {max_bytes} (max_image_bytes)",
                       status=413, param=param, code="image_too_large")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))  # reads the header only
            _check_header(image, max_pixels, param)
            image.load()
    except APIError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        # PIL's own guard fires in open() for images far above any sane size.
        raise APIError(f"image has too many pixels (limit {max_pixels}, max_image_pixels); downscale it",
                       status=413, param=param, code="image_too_large") from None
    except UnidentifiedImageError:
        raise APIError(f"cannot read the image; send one of: {', '.join(sorted(ALLOWED_FORMATS))}",
                       param=param, code="invalid_image") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise APIError(f"the image is corrupt or truncated ({exc})", param=param, code="invalid_image") from None
    return image.convert("RGB")


def _check_header(image: Image.Image, max_pixels: int, param: str) -> None:
    if image.format not in ALLOWED_FORMATS:
        raise APIError(f"image format {image.format} is not supported; "
                       f"send one of: {', '.join(sorted(ALLOWED_FORMATS))}",
                       param=param, code="unsupported_image_format")
    width, height = image.size
    if width * height > max_pixels:
        raise APIError(f"image is {width}x{height} = {width * height} pixels, above the limit of {max_pixels} "
                       f"(max_image_pixels); downscale it", status=413, param=param, code="image_too_large")
    if width == 0 or height == 0:
        raise APIError("image has no pixels", param=param, code="invalid_image")
