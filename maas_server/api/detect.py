"""POST /v1/detect/objects, /v1/detect/faces and /v1/faces/embeddings: what is where in images.

They take the image forms /v1/classify/image takes (multipart file parts, or base64 JSON) plus the
thresholds of a DetectionRequest. Models see each image shrunk to `image_max_side` at most; boxes
and landmarks are scaled back here to the pixels of the image the client sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import Field

from ..models.contract import Method
from ..models.image_io import DETECT_FACES, DETECT_OBJECTS, EMBED_FACES, Detected, DetectionQuery, Detections
from ..ops.memory import release_freed_memory
from ._common import after_response, json_response, resolve_model, state, submit, wait_all
from .endpoints import Family
from .forms import DETECTION_FORM, PNG_2X2
from .images import RELEASE_AFTER_PIXELS, CheckedImage, ImageRequest, decode_images, read_image_request
from .metering import report_usage
from .wire import ResponseBody, Usage


class DetectionRequest(ImageRequest):
    """Objects or faces in images: the image forms of ImageRequest plus how picky to be."""

    score_threshold: float = Field(0.25, ge=0, le=1, allow_inf_nan=False,
                                   description="leave out what the model is less sure of than this")
    iou_threshold: float = Field(0.45, ge=0, le=1, allow_inf_nan=False,
                                 description="boxes of one label overlapping more than this (intersection over "
                                             "union) count as one thing: the best is kept")
    max_detections: int = Field(100, ge=1, le=1000, description="at most this many per image, best first")


class BoxOut(ResponseBody):
    """A rectangle in pixels of the original image: x to the right, y down."""

    x1: float
    y1: float
    x2: float
    y2: float


class Point(ResponseBody):
    x: float
    y: float


class DetectedObject(ResponseBody):
    label: str
    score: float
    box: BoxOut


class ObjectDetections(ResponseBody):
    index: int
    width: int = Field(description="the original image's size in pixels; boxes are in these pixels")
    height: int
    objects: list[DetectedObject]


class ObjectDetectionList(ResponseBody):
    object: Literal["list"] = "list"
    model: str
    data: list[ObjectDetections]
    usage: Usage | None = None


class Face(ResponseBody):
    score: float
    box: BoxOut
    landmarks: dict[str, Point] | None = Field(
        None, description="left_eye, right_eye, nose, mouth_left, mouth_right (as seen in the image)")
    embedding: list[float] | None = Field(
        None, description="POST /v1/faces/embeddings: the face's vector (the default model's: 128 numbers, and two "
                          "faces less than 0.6 apart, Euclidean, show one person)")


class FaceDetections(ResponseBody):
    index: int
    width: int
    height: int
    faces: list[Face]


class FaceDetectionList(ResponseBody):
    object: Literal["list"] = "list"
    model: str
    data: list[FaceDetections]
    usage: Usage | None = None


family = Family("detect", __name__)

LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")  # the order adapters give them in
_EXAMPLE = {"base64": {"image": PNG_2X2}}


@family.post("/v1/detect/objects", "Object detection: labelled boxes in the original image's pixels",
               request=DetectionRequest, response=ObjectDetectionList, multipart=DETECTION_FORM,
               serves=(DETECT_OBJECTS,),
               examples={"base64": {"image": PNG_2X2, "score_threshold": 0.3, "max_detections": 10}})
def detect_objects() -> Any:
    name, found, images = _detect(DETECT_OBJECTS)
    data = [ObjectDetections(index=i, width=image.size[0], height=image.size[1],
                               objects=[DetectedObject(label=o.label, score=o.score, box=_box(o))
                                        for o in in_original_pixels(result, image)])
            for i, (result, image) in enumerate(zip(found, images))]
    return json_response(ObjectDetectionList(model=name, data=data, usage=_usage(name, images)))


# Faces are personal data: the request log never holds these routes' bodies, even with log_content.
@family.post("/v1/detect/faces", "Face detection: boxes, scores and five landmarks per face",
               request=DetectionRequest, response=FaceDetectionList, multipart=DETECTION_FORM,
               serves=(DETECT_FACES,), personal_data=True, examples=_EXAMPLE)
def detect_faces() -> Any:
    return _faces(DETECT_FACES)


@family.post("/v1/faces/embeddings", "Faces with a vector each, to tell whether two photos show one person",
               request=DetectionRequest, response=FaceDetectionList, multipart=DETECTION_FORM,
               serves=(EMBED_FACES,), personal_data=True, examples=_EXAMPLE)
def embed_faces() -> Any:
    return _faces(EMBED_FACES)


def _faces(method: Method[DetectionQuery, Detections]) -> Any:
    name, found, images = _detect(method)
    data = [FaceDetections(index=i, width=image.size[0], height=image.size[1],
                             faces=[_face(face) for face in in_original_pixels(result, image)])
            for i, (result, image) in enumerate(zip(found, images))]
    return json_response(FaceDetectionList(model=name, data=data, usage=_usage(name, images)))


def _detect(method: Method[DetectionQuery, Detections]) -> tuple[str, list[Detections], list[CheckedImage]]:
    body, images = read_image_request(DetectionRequest)
    entry = resolve_model(body.model, method)
    if sum(image.pixels for image in images) >= RELEASE_AFTER_PIXELS:
        after_response(release_freed_memory)

    def queries() -> Iterator[DetectionQuery]:  # decoded lazily, one full-size image at a time
        for image in decode_images(images, state().config.image_max_side):
            yield DetectionQuery(image, body.score_threshold, body.iou_threshold, body.max_detections)

    return entry.config.name, wait_all(submit(entry, method, queries())), images


def in_original_pixels(result: Detections, image: CheckedImage) -> list[Detected]:
    """The model saw the image shrunk (image_max_side): scale its boxes and landmarks back."""
    sx, sy = image.size[0] / result.width, image.size[1] / result.height
    if sx == sy == 1:
        return result.objects
    return [Detected(d.label, d.score, d.box.scaled(sx, sy),
                     tuple((x * sx, y * sy) for x, y in d.landmarks) if d.landmarks else None, d.embedding)
            for d in result.objects]


def _box(detected: Detected) -> BoxOut:
    box = detected.box
    return BoxOut(x1=box.x1, y1=box.y1, x2=box.x2, y2=box.y2)


def _face(detected: Detected) -> Face:
    landmarks = ({name: Point(x=x, y=y) for name, (x, y) in zip(LANDMARKS, detected.landmarks)}
                 if detected.landmarks else None)
    embedding = list(detected.embedding) if detected.embedding is not None else None
    return Face(score=detected.score, box=_box(detected), landmarks=landmarks, embedding=embedding)


def _usage(model: str, images: list[CheckedImage]) -> Usage:
    usage = Usage(prompt_tokens=len(images), total_tokens=len(images))  # one unit per image, as classification
    report_usage(model, usage)
    return usage
