"""POST /v1/classify/text and /v1/classify/image: our own small JSON API for classification."""

from __future__ import annotations

import base64
from typing import Any, Literal

from flask import Response
from pydantic import Field, field_validator

from ..errors import APIError
from ..models.contract import Method
from ..models.explain_io import EXPLAIN_IMAGE, EXPLAIN_TEXT, Explained, ImageQuestion, TextExplanation
from ..models.image_io import CLASSIFY_IMAGE
from ..models.text_io import CLASSIFY_TEXT, ZERO_SHOT_TEXT, Scores, TextItem
from ..ops.memory import release_freed_memory
from ._common import after_response, check_count, json_response, parse_json, resolve_model, state, submit, wait_all
from .endpoints import Family
from .forms import PNG_2X2, image_form
from .images import RELEASE_AFTER_PIXELS, ImageRequest, decode_images, read_image_request
from .metering import report_usage
from .wire import RequestBody, ResponseBody, Usage


class TextClassificationRequest(RequestBody):
    model: str | None = None
    input: str | list[str]
    labels: list[str] | None = None
    top_k: int | None = Field(None, ge=1)
    explain: bool = Field(False, description="also weigh each input token for the top label (costs a backward "
                                             "pass: its own queue and a lower input limit, max_explain_inputs)")

    @field_validator("labels")
    @classmethod
    def _distinct_labels(cls, labels: list[str] | None) -> list[str] | None:
        if labels is not None:
            if not labels or any(not label.strip() for label in labels):
                raise ValueError("labels must be a non-empty list of non-empty strings")
            if len(set(labels)) != len(labels):
                raise ValueError("labels must be distinct")
        return labels

    @property
    def inputs(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class ImageClassificationRequest(ImageRequest):
    top_k: int | None = Field(5, ge=1)
    explain: bool = Field(False, description="also return where the model looked for the top label (Grad-CAM): "
                                             "a backward pass, with its own queue and max_explain_inputs")
    explain_overlay: bool = Field(False, description="with the explanation, a PNG of the heatmap over the image as "
                                                     "the model saw it (base64); implies explain")


class LabelScore(ResponseBody):
    label: str
    score: float


class TokenWeightOut(ResponseBody):
    text: str
    start: int = Field(description="character offset of the token in the input")
    end: int
    weight: float = Field(description="in [-1, 1]: > 0 speaks for the label, < 0 against it")


class TextExplanationOut(ResponseBody):
    label: str
    tokens: list[TokenWeightOut]


class ImageExplanationOut(ResponseBody):
    label: str
    grid: list[list[float]] = Field(description="rows top to bottom of weights in [0, 1] (1: what mattered most) "
                                                "over the image as the model saw it (after its resize and crop)")
    overlay_png: str | None = Field(None, description="base64 PNG of the heatmap over that view (explain_overlay)")


class Classification(ResponseBody):
    index: int
    labels: list[LabelScore]
    explanation: TextExplanationOut | ImageExplanationOut | None = None


class ClassificationList(ResponseBody):
    object: Literal["list"] = "list"
    model: str
    data: list[Classification]
    usage: Usage | None = None


family = Family("classify", __name__)

_IMAGE_FORM = image_form({"top_k": {"type": "integer", "minimum": 1}, "explain": {"type": "boolean"},
                          "explain_overlay": {"type": "boolean"}})


@family.post("/v1/classify/text", "Text classification, zero-shot or with the model's labels",
               request=TextClassificationRequest, response=ClassificationList,
               serves=(CLASSIFY_TEXT, ZERO_SHOT_TEXT),  # a classifier's own labels, or any labels
               examples={"zero-shot": {"input": ["I love it", "I hate it"], "labels": ["positive", "negative"]}})
def classify_text() -> Any:
    body = parse_json(TextClassificationRequest)
    check_count(len(body.inputs), "input", "input")
    check_count(len(body.labels or []) or 1, "label", "labels")
    items = [TextItem(text, tuple(body.labels or ())) for text in body.inputs]
    if body.explain:
        _admit_explanations(len(items))
        entry = resolve_model(body.model, EXPLAIN_TEXT)
        return _explained(entry.config.name, wait_all(submit(entry, EXPLAIN_TEXT, items)), body.top_k)
    method = _text_method(body.model, bool(body.labels))
    entry = resolve_model(body.model, method)
    return _classification(entry.config.name, wait_all(submit(entry, method, items)), body.top_k)


def _text_method(name: str | None, labelled: bool) -> Method[TextItem, Scores]:
    """A named model's own kind of classification; unnamed, zero-shot when the request names labels.

    So "classify this" goes to a trained classifier, and "which of these labels" to a zero-shot
    model, unless the request names the model.
    """
    registry = state().registry
    entry = registry.get(name) if name is not None else None
    if entry is not None:
        return CLASSIFY_TEXT if entry.offers(CLASSIFY_TEXT) or not entry.offers(ZERO_SHOT_TEXT) else ZERO_SHOT_TEXT
    zero_shot, own_labels = registry.first_for(ZERO_SHOT_TEXT), registry.first_for(CLASSIFY_TEXT)
    return ZERO_SHOT_TEXT if zero_shot is not None and (labelled or own_labels is None) else CLASSIFY_TEXT


@family.post("/v1/classify/image", "Image classification: multipart file parts, or JSON with base64 images",
               request=ImageClassificationRequest, response=ClassificationList, multipart=_IMAGE_FORM,
               serves=(CLASSIFY_IMAGE,), examples={"base64": {"image": PNG_2X2, "top_k": 3},
                                                   "data-url": {"image": [f"data:image/png;base64,{PNG_2X2}"]}})
def classify_image() -> Any:
    body, images = read_image_request(ImageClassificationRequest)
    explaining = body.explain or body.explain_overlay
    if explaining:
        _admit_explanations(len(images))
    entry = resolve_model(body.model, EXPLAIN_IMAGE if explaining else None)
    if sum(image.pixels for image in images) >= RELEASE_AFTER_PIXELS:
        after_response(release_freed_memory)  # by then the decoded images and their tensors are freed
    # Decoded lazily: the runner prepares each image as it comes, so one full-size image at a time.
    decoded = decode_images(images, state().config.image_max_side)
    if explaining:
        questions = (ImageQuestion(image, overlay=body.explain_overlay) for image in decoded)
        explained = wait_all(submit(entry, EXPLAIN_IMAGE, questions))
        return _explained(entry.config.name, explained, body.top_k)
    results = wait_all(submit(entry, CLASSIFY_IMAGE, decoded))
    return _classification(entry.config.name, results, body.top_k)


# An explanation's working memory (activations kept for the backward pass, integrated gradients'
# interpolation steps): 24 at once (16 texts, 8 images) raised a worker's high-water mark by 1.2 GB.
EXPLANATION_BYTES = 64 << 20


def _admit_explanations(count: int) -> None:
    limit = state().config.max_explain_inputs
    if count > limit:
        raise APIError(f"explanations cost a backward pass each: at most {limit} inputs per call with explain "
                       f"(max_explain_inputs), this one has {count}; split the call",
                       status=400, param="explain", code="too_many_inputs")
    state().memory.reserve(EXPLANATION_BYTES * count, f"{count} explanation(s)", param="explain")


def _classification(model: str, results: list[Scores], top_k: int | None,
                    explanations: list[TextExplanationOut | ImageExplanationOut] | None = None) -> Response:
    data = [Classification(index=i, labels=[LabelScore(label=label, score=score)
                                              for label, score in scores.labels[:top_k]],
                             explanation=explanations[i] if explanations else None)
            for i, scores in enumerate(results)]
    units = sum(r.tokens for r in results)
    usage = Usage(prompt_tokens=units, total_tokens=units)
    report_usage(model, usage)
    return json_response(ClassificationList(model=model, data=data, usage=usage))


def _explained(model: str, results: list[Explained], top_k: int | None) -> Response:
    return _classification(model, [r.scores for r in results], top_k, [_explanation(r) for r in results])


def _explanation(result: Explained) -> TextExplanationOut | ImageExplanationOut:
    explanation = result.explanation
    if isinstance(explanation, TextExplanation):
        return TextExplanationOut(label=explanation.label, tokens=[
            TokenWeightOut(text=t.text, start=t.start, end=t.end, weight=t.weight) for t in explanation.tokens])
    png = base64.b64encode(explanation.overlay_png).decode() if explanation.overlay_png is not None else None
    return ImageExplanationOut(label=explanation.label, grid=explanation.grid, overlay_png=png)
