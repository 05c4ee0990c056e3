"""POST /v1/classify/text and /v1/classify/image: our own small JSON API for classification."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request
from pydantic import ValidationError

from ..errors import APIError, validation_error
from ..models.base import Scores, TextItem
from ..ops.memory import release_freed_memory
from . import schemas as s
from ._common import after_response, check_count, parse_json, read_body, resolve_model, state, submit, wait_all
from .images import RELEASE_AFTER_PIXELS, CheckedImage, ImageLimits, check_images, decode_base64_image, decode_images
from .metering import report_usage

bp = Blueprint("classify", __name__)


@bp.post("/v1/classify/text")
def classify_text() -> Any:
    body = parse_json(s.TextClassificationRequest)
    entry = resolve_model("/v1/classify/text", body.model)
    check_count(len(body.inputs), "input", "input")
    check_count(len(body.labels or []) or 1, "label", "labels")
    assert entry.runner is not None
    labels = tuple(body.labels or ())
    results = wait_all(submit(entry, "classify", [TextItem(text, labels) for text in body.inputs]))
    return _classification(entry.config.name, results, body.top_k)


@bp.post("/v1/classify/image")
def classify_image() -> Any:
    name, top_k, images = _image_request()
    entry = resolve_model("/v1/classify/image", name)
    assert entry.runner is not None
    if sum(image.pixels for image in images) >= RELEASE_AFTER_PIXELS:
        after_response(release_freed_memory)  # by then the decoded images and their tensors are freed
    # Decoded lazily: the runner prepares each image as it comes, so one full-size image at a time.
    decoded = decode_images(images, state().config.image_max_side)
    return _classification(entry.config.name, wait_all(submit(entry, "classify", decoded, count=len(images))), top_k)


def _image_request() -> tuple[str | None, int | None, list[CheckedImage]]:
    """Read either the multipart form (file parts) or the JSON form (base64); check every image's header."""
    config = state().config
    if request.mimetype == "multipart/form-data":
        read_body()  # the form is then parsed from the checked bytes (werkzeug reuses them)
        uploads = [f for _, f in request.files.items(multi=True)]
        check_count(len(uploads), "image file part", "image")
        fields = {k: v for k, v in request.form.items() if k in ("model", "top_k")}
        unknown = sorted(set(request.form) - {"model", "top_k"})
        if unknown:
            raise APIError(f"unknown form field(s): {', '.join(unknown)}", status=422, param=unknown[0],
                           code="invalid_value")
        try:
            # Form fields are text: "3" is top_k 3 here, where JSON must send a number.
            body = s.ImageClassificationRequest.model_validate({**fields, "image": "-"}, strict=False)
        except ValidationError as exc:
            raise validation_error(exc) from None
        blobs = [(f.read(config.max_image_bytes + 1), f"image[{i}]") for i, f in enumerate(uploads)]
    else:
        body = parse_json(s.ImageClassificationRequest)
        check_count(len(body.images), "image", "image")
        blobs = [(decode_base64_image(text, f"image[{i}]"), f"image[{i}]") for i, text in enumerate(body.images)]
    limits = ImageLimits(max_bytes=config.max_image_bytes, max_pixels=config.max_image_pixels,
                         max_request_pixels=config.max_request_pixels)
    return body.model, body.top_k, check_images(blobs, limits)


def _classification(model: str, results: list[Scores], top_k: int | None) -> dict[str, Any]:
    data = [s.Classification(index=i, labels=[s.LabelScore(label=label, score=score)
                                              for label, score in scores.labels[:top_k]])
            for i, scores in enumerate(results)]
    units = sum(r.tokens for r in results)
    usage = s.Usage(prompt_tokens=units, total_tokens=units)
    report_usage(model, usage)
    return s.dump(s.ClassificationList(model=model, data=data, usage=usage))
