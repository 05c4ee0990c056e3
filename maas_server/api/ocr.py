"""POST /v1/ocr: the text in images, line by line with each line's polygon, and all of it in reading order.

It takes the image forms /v1/classify/image takes (multipart file parts, or base64 JSON) plus a score
threshold. The model sees each image shrunk to `image_max_side` at most; polygons are scaled back here to
the pixels of the image the client sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import Field

from ..models.ocr_io import READ_TEXT, ReadText, TextQuery
from ..ops.memory import release_freed_memory
from ._common import after_response, json_response, resolve_model, state, submit, wait_all
from .endpoints import Family
from .forms import PNG_2X2, UNIT, image_form
from .images import RELEASE_AFTER_PIXELS, ImageRequest, decode_images, read_image_request
from .metering import report_usage
from .wire import ResponseBody, Usage

family = Family("ocr", __name__)


class OCRRequest(ImageRequest):
    """Images to read, and the least confidence a line may have to be returned."""

    score_threshold: float = Field(0.5, ge=0, le=1, allow_inf_nan=False,
                                   description="leave out lines the recogniser is less sure of than this")


class TextLineOut(ResponseBody):
    text: str
    score: float = Field(description="the recogniser's confidence in the line, in [0, 1]")
    box: list[list[float]] = Field(description="the line's polygon: four [x, y] corners, clockwise from the top "
                                               "left of the text, in pixels of the image as sent")


class ReadTextOut(ResponseBody):
    index: int
    width: int = Field(description="the image's size as sent; polygons are in these pixels")
    height: int
    text: str = Field(description="every line in reading order: a space between lines of one row, a newline "
                                  "between rows")
    lines: list[TextLineOut] = Field(description="in reading order: rows top to bottom, each left to right")


class ReadTextList(ResponseBody):
    object: str = "list"
    model: str
    data: list[ReadTextOut]
    usage: Usage


@family.post("/v1/ocr", "Text in images (OCR): lines with polygons and scores, and the text in reading order",
             request=OCRRequest, response=ReadTextList, serves=(READ_TEXT,),
             multipart=image_form({"score_threshold": UNIT}),
             examples={"base64": {"image": PNG_2X2, "score_threshold": 0.5}})
def read_text() -> Any:
    body, images = read_image_request(OCRRequest)
    entry = resolve_model(body.model)
    if sum(image.pixels for image in images) >= RELEASE_AFTER_PIXELS:
        after_response(release_freed_memory)

    def queries() -> Iterator[TextQuery]:  # decoded lazily, one full-size image at a time
        for image in decode_images(images, state().config.image_max_side):
            yield TextQuery(image, body.score_threshold)

    results: list[ReadText] = wait_all(submit(entry, READ_TEXT, queries()))
    data = [_read_text_out(i, result.scaled(*image.size)) for i, (result, image) in enumerate(zip(results, images))]
    usage = Usage(prompt_tokens=len(images), total_tokens=len(images))  # one unit per image, as classification
    report_usage(entry.config.name, usage)
    return json_response(ReadTextList(model=entry.config.name, data=data, usage=usage))


def _read_text_out(index: int, result: ReadText) -> ReadTextOut:
    lines = [TextLineOut(text=line.text, score=line.score, box=[[x, y] for x, y in line.box]) for line in result.lines]
    return ReadTextOut(index=index, width=result.width, height=result.height, text=result.text, lines=lines)
