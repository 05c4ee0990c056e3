"""POST /v1/detect/objects end to end on tiny detectors, and the object-detection adapter's two sources.

The shared app (conftest.tiny_config) serves `tiny-yolo`, a random-weight Darknet network, with
image_max_side 128, max_inputs 8 and max_image_bytes 200 KB. A Hugging Face DETR with random
weights (tests/tiny_models.py) serves the transformers path.
"""

from __future__ import annotations

import base64
import io
import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from maas_server.api.images import to_rgb_at, working_size
from maas_server.app import create_app
from maas_server.models import load_model
from maas_server.models import object_detection as od
from maas_server.models.contract import BatchMethod, ModelDescription
from maas_server.models.image_io import DETECT_OBJECTS, Box, Detected, DetectionQuery, Detections
from maas_server.settings import load_settings
from tests.tiny_models import DARKNET_NAMES


def _photo(size: tuple[int, int], seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (6, 6, 3), dtype=np.uint8)).resize(size, Image.Resampling.BILINEAR)


def _png(size: tuple[int, int] = (100, 80), seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    _photo(size, seed).save(buffer, "PNG")
    return buffer.getvalue()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _detect(client: FlaskClient, **body: Any) -> Any:
    return client.post("/v1/detect/objects", json=body)


def _objects(response: Any, index: int = 0) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json["data"][index]["objects"]  # type: ignore[no-any-return]


def _assert_same(one: list[dict[str, Any]], other: list[dict[str, Any]]) -> None:
    assert [o["label"] for o in one] == [o["label"] for o in other]
    for a, b in zip(one, other):
        assert a["score"] == pytest.approx(b["score"], abs=1e-4)
        assert list(a["box"].values()) == pytest.approx(list(b["box"].values()), abs=0.05)


def _error(response: Any, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)
    if code is not None:
        assert response.json["error"]["code"] == code, response.json


# -- the route on the shared app's tiny Darknet model

def test_json_and_multipart_find_the_same_labelled_boxes_best_first(client: FlaskClient) -> None:
    png = _png()
    as_json = _detect(client, image=_b64(png))
    assert as_json.status_code == 200
    body = as_json.json
    assert body["model"] == "tiny-yolo" and body["object"] == "list" and body["usage"]["prompt_tokens"] == 1
    assert (body["data"][0]["index"], body["data"][0]["width"], body["data"][0]["height"]) == (0, 100, 80)
    objects = body["data"][0]["objects"]
    assert objects and {o["label"] for o in objects} <= set(DARKNET_NAMES)
    assert [o["score"] for o in objects] == sorted((o["score"] for o in objects), reverse=True)
    assert all(o["score"] > 0.25 for o in objects)  # the default score_threshold
    for o in objects:
        box = o["box"]
        assert 0 <= box["x1"] <= box["x2"] <= 100 and 0 <= box["y1"] <= box["y2"] <= 80
    form = {"model": "tiny-yolo", "image": [(io.BytesIO(png), "a.png"), (io.BytesIO(_png(seed=1)), "b.png")]}
    multi = client.post("/v1/detect/objects", data=form, content_type="multipart/form-data")
    assert [d["index"] for d in multi.json["data"]] == [0, 1] and multi.json["usage"]["prompt_tokens"] == 2
    _assert_same(_objects(multi), objects)  # batched with another image: kernels may round differently


def test_thresholds_and_max_detections_are_the_requests(client: FlaskClient) -> None:
    image = _b64(_png())
    loose = _objects(_detect(client, image=image, score_threshold=0.05, iou_threshold=1.0))
    default = _objects(_detect(client, image=image))
    assert len(loose) > len(default) > 0
    assert len(_objects(_detect(client, image=image, score_threshold=0.05, iou_threshold=0.0))) < len(loose)
    assert _objects(_detect(client, image=image, max_detections=1)) == default[:1]
    assert _objects(_detect(client, image=image, score_threshold=1)) == []
    form = {"score_threshold": "0.05", "iou_threshold": "1", "max_detections": "3",
            "image": [(io.BytesIO(_png()), "a.png")]}
    _assert_same(_objects(client.post("/v1/detect/objects", data=form, content_type="multipart/form-data")), loose[:3])


def test_boxes_are_scaled_back_to_the_original_pixels(client: FlaskClient, tmp_path: Path) -> None:
    # 400x300 is shrunk to 128x96 (image_max_side) before the model: compare with the adapter run on that.
    big = _photo((400, 300))
    buffer = io.BytesIO()
    big.save(buffer, "PNG")
    objects = _objects(_detect(client, image=_b64(buffer.getvalue()), score_threshold=0.05))
    model = client.application.extensions["maas"].registry.get("tiny-yolo").runner.model
    shrunk = to_rgb_at(big, working_size(big.size, 128))  # as the server shrinks it
    found = model.run([model.prepare(DetectionQuery(shrunk, score_threshold=0.05))])[0]
    assert (found.width, found.height) == (128, 96) and found.objects
    assert [o["label"] for o in objects] == [d.label for d in found.objects]
    for o, d in zip(objects, found.objects):
        scale = 400 / 128
        expected = [d.box.x1 * scale, d.box.y1 * scale, d.box.x2 * scale, d.box.y2 * scale]
        assert [o["box"][k] for k in ("x1", "y1", "x2", "y2")] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("body, status, code", [
    ({}, 400, None),  # no image
    ({"image": []}, 400, "invalid_value"),
    ({"image": _b64(b"not an image at all")}, 400, "invalid_image"),
    ({"image": "%%%"}, 400, "invalid_image"),
    ({"image": _b64(_png()), "score_threshold": 2}, 400, None),
    ({"image": _b64(_png()), "iou_threshold": -0.1}, 400, None),
    ({"image": _b64(_png()), "max_detections": 0}, 400, None),
    ({"image": _b64(_png()), "max_detections": 1001}, 400, None),
    ({"image": [_b64(_png())] * 9}, 400, "too_many_inputs"),
    ({"image": _b64(_png()), "model": "tiny-resnet"}, 400, "wrong_model_task"),
    ({"image": _b64(_png()), "model": "nope"}, 404, "model_not_found"),
])
def test_bad_requests_are_4xx(client: FlaskClient, body: dict[str, Any], status: int, code: str | None) -> None:
    _error(_detect(client, **body), status, code)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_thresholds_are_refused(client: FlaskClient, literal: str) -> None:
    raw = f'{{"image": {json.dumps(_b64(_png()))}, "score_threshold": {literal}}}'
    _error(client.post("/v1/detect/objects", data=raw, content_type="application/json"), 400)
    form = {"iou_threshold": literal.lower(), "image": [(io.BytesIO(_png()), "a.png")]}
    _error(client.post("/v1/detect/objects", data=form, content_type="multipart/form-data"), 400)


def test_large_images_and_empty_forms_are_refused(client: FlaskClient) -> None:
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    noise.save(buffer, "PNG")  # ~270 KB > max_image_bytes
    _error(_detect(client, image=_b64(buffer.getvalue())), 413, "image_too_large")
    _error(client.post("/v1/detect/objects", data={"max_detections": "3"}, content_type="multipart/form-data"), 400)


# -- the transformers path and the image-size contract, on apps of their own

@pytest.fixture(scope="module")
def detr_client(tmp_path_factory: pytest.TempPathFactory, tiny_detr: str) -> FlaskClient:
    config = load_settings(file={"server": {"cache_dir": str(tmp_path_factory.mktemp("detr")), "image_max_side": 64},
                               "models": [{"name": "tiny-detr", "task": "object-detection", "source": tiny_detr}]})
    app = create_app(config)
    assert app.extensions["maas"].registry.wait_until_loaded(timeout=120)
    assert app.extensions["maas"].registry.ready, [e.error for e in app.extensions["maas"].registry.entries()]
    return app.test_client()


def test_a_hugging_face_detr_serves_the_route(detr_client: FlaskClient) -> None:
    images = [_b64(_png((200, 100))), _b64(_png((50, 90), seed=1))]
    response = _detect(detr_client, image=images, score_threshold=0.01)
    assert response.json["model"] == "tiny-detr"
    for index, (width, height) in enumerate([(200, 100), (50, 90)]):
        objects = _objects(response, index)
        assert objects and {o["label"] for o in objects} <= set(DARKNET_NAMES)
        for o in objects:  # in the original pixels, within the image
            box = o["box"]
            assert 0 <= box["x1"] <= box["x2"] <= width and 0 <= box["y1"] <= box["y2"] <= height
    assert len(_objects(_detect(detr_client, image=images[0], score_threshold=0.01, max_detections=1))) == 1
    assert detr_client.get("/v1/models/tiny-detr").json["labels"] == DARKNET_NAMES


class HalfBoxDetector:
    """Finds one "thing" over the top-left quarter of whatever image it is given, and remembers the sizes."""

    task = "object-detection"

    def __init__(self) -> None:
        self.sizes: list[tuple[int, int]] = []

    def describe(self) -> ModelDescription:
        return ModelDescription(device="cpu", dtype="float32", labels=("thing",))

    def batch_methods(self) -> dict[Any, BatchMethod]:
        return {DETECT_OBJECTS: BatchMethod(lambda query: query, self.run)}

    def warmup(self) -> None:
        pass

    def run(self, batch: list[DetectionQuery]) -> list[Detections]:
        self.sizes += [query.image.size for query in batch]
        return [Detections(w, h, [Detected("thing", 0.9, Box(0, 0, w / 2, h / 2))])
                for w, h in (query.image.size for query in batch)]


def test_the_route_scales_the_models_boxes_exactly() -> None:
    model = HalfBoxDetector()
    config = load_settings(file={"server": {"image_max_side": 64},
                               "models": [{"name": "half", "task": "object-detection", "source": "unused"}]})
    app: Flask = create_app(config, loader=lambda cfg, server: model)
    assert app.extensions["maas"].registry.wait_until_loaded(10)
    response = _detect(app.test_client(), image=[_b64(_png((400, 300))), _b64(_png((30, 20)))])
    assert model.sizes == [(64, 48), (30, 20)]  # shrunk to image_max_side; the small one as it came
    boxes = [_objects(response, i)[0]["box"] for i in (0, 1)]
    assert boxes == [{"x1": 0, "y1": 0, "x2": 200, "y2": 150}, {"x1": 0, "y1": 0, "x2": 15, "y2": 10}]
    assert [(d["width"], d["height"]) for d in response.json["data"]] == [(400, 300), (30, 20)]


# -- the adapter

def _tiny_yolo_config(client: FlaskClient) -> Any:
    return client.application.extensions["maas"].config.model("tiny-yolo")


@pytest.fixture(scope="module")
def detr_model(tiny_detr: str, tmp_path_factory: pytest.TempPathFactory) -> od.ObjectDetectionModel:
    config = load_settings(file={"models": [{"name": "d", "task": "object-detection", "source": tiny_detr}]})
    return load_model(config.models[0], "cpu", torch.float32, tmp_path_factory.mktemp("detr-cache"))


@pytest.mark.parametrize("which", ["darknet", "detr"])
def test_one_batch_applies_each_items_own_thresholds(client: FlaskClient, detr_model: od.ObjectDetectionModel,
                                                     which: str) -> None:
    model = detr_model if which == "detr" else client.application.extensions["maas"].registry.get(
        "tiny-yolo").runner.model
    low = 0.01 if which == "detr" else 0.05
    queries = [DetectionQuery(_photo((120, 80)), score_threshold=low, iou_threshold=1.0),
               DetectionQuery(_photo((50, 90), seed=1), score_threshold=low, iou_threshold=1.0, max_detections=2),
               DetectionQuery(_photo((120, 80)), score_threshold=1.0)]
    together = model.run([model.prepare(q) for q in queries])
    alone = [model.run([model.prepare(q)])[0] for q in queries]
    assert [(d.width, d.height) for d in together] == [(120, 80), (50, 90), (120, 80)]
    assert len(together[1].objects) == 2 and together[2].objects == [] and together[0].objects
    for one, other in zip(together, alone):
        assert [d.label for d in one.objects] == [d.label for d in other.objects]
        for a, b in zip(one.objects, other.objects):
            assert a.score == pytest.approx(b.score, abs=1e-4)
            assert [a.box.x1, a.box.y1, a.box.x2, a.box.y2] == pytest.approx([b.box.x1, b.box.y1, b.box.x2, b.box.y2],
                                                                              abs=0.05)


def test_labels_come_from_the_names_file_beside_the_cfg(client: FlaskClient, tmp_path: Path) -> None:
    config = _tiny_yolo_config(client)
    assert client.get("/v1/models/tiny-yolo").json["labels"] == DARKNET_NAMES
    cfg = tmp_path / "net.cfg"
    cfg.write_text(Path(config.architecture.removeprefix("darknet:")).read_text())

    def labels() -> tuple[str, ...] | None:
        update = {"architecture": f"darknet:{cfg}"}
        return load_model(config.model_copy(update=update), "cpu", torch.float32, tmp_path).describe().labels

    assert labels() == ("class_0", "class_1", "class_2")  # no names file
    (tmp_path / "coco.names").write_text("a\nb\nc\n")
    assert labels() == ("a", "b", "c")  # the folder's only one
    (tmp_path / "other.names").write_text("x\n")
    with pytest.raises(ValueError, match=r"several \.names files"):
        labels()
    (tmp_path / "net.names").write_text("x\ny\nz\n")
    assert labels() == ("x", "y", "z")  # the cfg's own first


def test_unknown_architectures_are_refused_by_name(client: FlaskClient, tmp_path: Path) -> None:
    config = _tiny_yolo_config(client).model_copy(update={"architecture": "yolo:v3"})
    with pytest.raises(ValueError, match="unknown architecture 'yolo:v3'"):
        load_model(config, "cpu", torch.float32, tmp_path)


def test_only_the_official_yolov3_tiny_weights_get_their_trained_masks(tmp_path: Path) -> None:
    official = tmp_path / "official.weights"
    with official.open("wb") as file:  # the right header and size (sparse: no 35 MB written)
        file.write(struct.pack("<3iQ", 0, 2, 0, 32_013_312))
        file.truncate(od.YOLOV3_TINY_BYTES)
    assert od._trained_masks(official) == ((3, 4, 5), (1, 2, 3))
    retrained = tmp_path / "retrained.weights"
    with retrained.open("wb") as file:  # the same network trained again: its own cfg's masks
        file.write(struct.pack("<3iQ", 0, 2, 0, 64_000))
        file.truncate(od.YOLOV3_TINY_BYTES)
    assert od._trained_masks(retrained) is None
    short = tmp_path / "short.weights"
    short.write_bytes(struct.pack("<3iQ", 0, 2, 0, 32_013_312))  # the header alone: another network
    assert od._trained_masks(short) is None
