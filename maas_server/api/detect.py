"""POST /v1/detect/objects, /v1/detect/faces and /v1/faces/embeddings: what is where in images.

They take the image forms /v1/classify/image takes (multipart file parts, or base64 JSON) plus the
thresholds of a DetectionRequest. Models see each image shrunk to `image_max_side` at most; boxes
and landmarks are scaled back here to the pixels of the image the client sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..models.base import DETECT_FACES, DETECT_OBJECTS, EMBED_FACES, Detected, DetectionQuery, Detections, Method
from ..ops.memory import release_freed_memory
from . import schemas as s
from ._common import after_response, json_response, resolve_model, state, submit, wait_all
from .endpoints import Family
from .forms import DETECTION_FORM, PNG_2X2
from .images import RELEASE_AFTER_PIXELS, CheckedImage, decode_images, read_image_request
from .metering import report_usage

family = Family("detect", __name__)

LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")  # the order adapters give them in
_EXAMPLE = {"base64": {"image": PNG_2X2}}


@family.post("/v1/detect/objects", "Object detection: labelled boxes in the original image's pixels",
               request=s.DetectionRequest, response=s.ObjectDetectionList, multipart=DETECTION_FORM,
               serves=(DETECT_OBJECTS,),
               examples={"base64": {"image": PNG_2X2, "score_threshold": 0.3, "max_detections": 10}})
def detect_objects() -> Any:
    name, found, images = _detect(DETECT_OBJECTS)
    data = [s.ObjectDetections(index=i, width=image.size[0], height=image.size[1],
                               objects=[s.DetectedObject(label=o.label, score=o.score, box=_box(o))
                                        for o in in_original_pixels(result, image)])
            for i, (result, image) in enumerate(zip(found, images))]
    return json_response(s.ObjectDetectionList(model=name, data=data, usage=_usage(name, images)))


# Faces are personal data: the request log never holds these routes' bodies, even with log_content.
@family.post("/v1/detect/faces", "Face detection: boxes, scores and five landmarks per face",
               request=s.DetectionRequest, response=s.FaceDetectionList, multipart=DETECTION_FORM,
               serves=(DETECT_FACES,), personal_data=True, examples=_EXAMPLE)
def detect_faces() -> Any:
    return _faces(DETECT_FACES)


@family.post("/v1/faces/embeddings", "Faces with a vector each, to tell whether two photos show one person",
               request=s.DetectionRequest, response=s.FaceDetectionList, multipart=DETECTION_FORM,
               serves=(EMBED_FACES,), personal_data=True, examples=_EXAMPLE)
def embed_faces() -> Any:
    return _faces(EMBED_FACES)


def _faces(method: Method[DetectionQuery, Detections]) -> Any:
    name, found, images = _detect(method)
    data = [s.FaceDetections(index=i, width=image.size[0], height=image.size[1],
                             faces=[_face(face) for face in in_original_pixels(result, image)])
            for i, (result, image) in enumerate(zip(found, images))]
    return json_response(s.FaceDetectionList(model=name, data=data, usage=_usage(name, images)))


def _detect(method: Method[DetectionQuery, Detections]) -> tuple[str, list[Detections], list[CheckedImage]]:
    body, images = read_image_request(s.DetectionRequest)
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


def _box(detected: Detected) -> s.BoxOut:
    box = detected.box
    return s.BoxOut(x1=box.x1, y1=box.y1, x2=box.x2, y2=box.y2)


def _face(detected: Detected) -> s.Face:
    landmarks = ({name: s.Point(x=x, y=y) for name, (x, y) in zip(LANDMARKS, detected.landmarks)}
                 if detected.landmarks else None)
    embedding = list(detected.embedding) if detected.embedding is not None else None
    return s.Face(score=detected.score, box=_box(detected), landmarks=landmarks, embedding=embedding)


def _usage(model: str, images: list[CheckedImage]) -> s.Usage:
    usage = s.Usage(prompt_tokens=len(images), total_tokens=len(images))  # one unit per image, as classification
    report_usage(model, usage)
    return usage
