"""POST /v1/classify/scene: the kind of place each image shows, with the clues behind the answer.

Its own route, not a field of /v1/classify/image: by default the answer combines two models (the image
classifier's ImageNet classes and the object detector's COCO objects, models/scene_rules.py), whose
detector an image classification should not pay for unasked; and an operator's Places365 model
(task `scene-classification`) is a model of its own that `model` names. A request that names such a
model, or names none while one is configured, gets its answer (`method: "model"`); otherwise the
heuristic answers (`method: "heuristic"`) over the named, or first, image classifier and the first
object detector.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..models.image_io import CLASSIFY_IMAGE, DETECT_OBJECTS, DetectionQuery
from ..models.scene_io import CLASSIFY_SCENE, Scene
from ..models.scene_rules import heuristic_scene
from ._common import json_response, may_use, resolve_model, state, submit, wait_all
from .endpoints import Family
from .forms import PNG_2X2, image_form
from .images import ImageRequest, decode_images, read_image_request
from .metering import report_usage
from .wire import ResponseBody, Usage

family = Family("scenes", __name__)


class SceneEvidenceOut(ResponseBody):
    source: str = Field(description='"imagenet" (a class of the image classifier), "coco" (an object the detector '
                                    'found) or "places365" (a class of a scene model)')
    label: str
    score: float


class SceneOut(ResponseBody):
    index: int
    top_level: str | None = Field(description='"indoor", "outdoor natural" or "outdoor man-made" (Places365\'s top '
                                              'level); null when nothing in the image gives it away')
    label: str | None = Field(description='a finer label ("kitchen", "beach", "street"); null as top_level')
    score: float = Field(description="the heuristic's votes for the label (capped at 1), or the model's probability")
    method: str = Field(description='"heuristic" (rules over ImageNet classes and COCO objects) or "model"')
    evidence: list[SceneEvidenceOut] = Field(description="the clues, those behind the label first")


class SceneList(ResponseBody):
    object: str = "list"
    model: str = Field(description="the scene model, or the image classifier the heuristic read")
    detector: str | None = Field(None, description="the object detector the heuristic read")
    data: list[SceneOut]
    usage: Usage


@family.post("/v1/classify/scene", "Scene of each image: Places365's top level, a finer label, and the evidence",
             request=ImageRequest, response=SceneList, serves=(CLASSIFY_SCENE, CLASSIFY_IMAGE, DETECT_OBJECTS),
             multipart=image_form({}), examples={"base64": {"image": PNG_2X2}})
def classify_scene() -> Any:
    body, images = read_image_request(ImageRequest)
    side = state().config.image_max_side
    if _names_scene_model(body.model):
        entry = resolve_model(body.model, CLASSIFY_SCENE)
        scenes: list[Scene] = wait_all(submit(entry, CLASSIFY_SCENE, decode_images(images, side)))
        return _scene_list(entry.config.name, None, scenes)
    classifier = resolve_model(body.model, CLASSIFY_IMAGE)
    detector = resolve_model(None, DETECT_OBJECTS)
    # Each model decodes the images lazily on its own: one full-size image at a time, never all of them at once.
    class_handles = submit(classifier, CLASSIFY_IMAGE, decode_images(images, side))
    object_handles = submit(detector, DETECT_OBJECTS, (DetectionQuery(image) for image in decode_images(images, side)))
    scenes = [heuristic_scene(classes, objects)
              for classes, objects in zip(wait_all(class_handles), wait_all(object_handles))]
    return _scene_list(classifier.config.name, detector.config.name, scenes)


def _names_scene_model(name: str | None) -> bool:
    """Whether the request is for a scene model: it names one, or names none while the key may use one."""
    registry = state().registry
    if name is not None:
        entry = registry.get(name)
        return entry is not None and entry.offers(CLASSIFY_SCENE)
    return any(e.offers(CLASSIFY_SCENE) and may_use(e) for e in registry.entries())


def _scene_list(model: str, detector: str | None, scenes: list[Scene]) -> Any:
    data = [SceneOut(index=i, top_level=scene.top_level, label=scene.label, score=scene.score, method=scene.method,
                     evidence=[SceneEvidenceOut(source=e.source, label=e.label, score=e.score) for e in scene.evidence])
            for i, scene in enumerate(scenes)]
    usage = Usage(prompt_tokens=len(scenes), total_tokens=len(scenes))  # one unit per image
    report_usage(model, usage)
    return json_response(SceneList(model=model, detector=detector, data=data, usage=usage))
