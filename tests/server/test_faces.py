"""Faces on the tiny app: /v1/detect/faces (MTCNN) and /v1/faces/embeddings (MTCNN + dlib), with the real weights.

The app's settings (conftest.tiny_config): image_max_side 128, so a 512-pixel photo is seen at 128 pixels and
its boxes and landmarks come back scaled by 4; max_image_bytes 200 KB, max_image_pixels 1 M, max_inputs 8.
The models need their packages (`make install`); without them these tests skip and say so.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from flask.testing import FlaskClient
from PIL import Image, ImageOps

from maas_server.app import create_app
from maas_server.models.contract import BatchMethod, ModelDescription
from maas_server.models.image_io import DETECT_FACES, EMBED_FACES, Box, Detected, DetectionQuery, Detections
from maas_server.ops.logs import JsonFormatter
from maas_server.settings import load_settings
from tests.server.accounting_support import fake_loader

skimage_data = pytest.importorskip("skimage.data")

needs_mtcnn = pytest.mark.skipif(not importlib.util.find_spec("facenet_pytorch"),
                                 reason="facenet-pytorch is not installed (make install adds it, with --no-deps)")
needs_dlib = pytest.mark.skipif(
    not (importlib.util.find_spec("facenet_pytorch") and importlib.util.find_spec("dlib")
         and importlib.util.find_spec("face_recognition_models")),
    reason="facenet-pytorch, dlib-bin and face-recognition-models are not all installed (make install adds them)")

LANDMARKS = ["left_eye", "right_eye", "nose", "mouth_left", "mouth_right"]
ASTRONAUT_FACE = (181, 62, 268, 172)  # MTCNN's box on the full-size photo (x1, y1, x2, y2)


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _astronaut() -> Image.Image:
    return Image.fromarray(skimage_data.astronaut())


def _multipart(client: FlaskClient, route: str, *images: bytes, **fields: str):
    files = [(io.BytesIO(blob), f"{i}.jpg") for i, blob in enumerate(images)]
    return client.post(route, data={**fields, "image": files}, content_type="multipart/form-data")


def _base64(client: FlaskClient, route: str, *images: bytes, **fields):
    return client.post(route, json={**fields, "image": [base64.b64encode(blob).decode() for blob in images]})


# -- detection

@needs_mtcnn
def test_one_face_on_the_astronaut_in_the_photos_own_pixels(client: FlaskClient) -> None:
    r = _multipart(client, "/v1/detect/faces", _jpeg(_astronaut()))
    assert r.status_code == 200, r.json
    assert r.json["model"] == "mtcnn" and r.json["usage"]["prompt_tokens"] == 1
    (item,) = r.json["data"]
    assert (item["width"], item["height"]) == (512, 512)
    (face,) = item["faces"]
    assert face["score"] > 0.99 and face["embedding"] is None
    box = face["box"]
    # Seen at 128 pixels, scaled back by 4: within a few of the model's pixels of the full-size box.
    assert np.allclose([box["x1"], box["y1"], box["x2"], box["y2"]], ASTRONAUT_FACE, atol=12), box
    points = face["landmarks"]
    assert sorted(points) == sorted(LANDMARKS)
    assert all(box["x1"] <= p["x"] <= box["x2"] and box["y1"] <= p["y"] <= box["y2"] for p in points.values())
    # As seen in the image: the left eye is left of the right one, the nose below the eyes, the mouth below that.
    assert points["left_eye"]["x"] < points["nose"]["x"] < points["right_eye"]["x"]
    assert max(points["left_eye"]["y"], points["right_eye"]["y"]) < points["nose"]["y"] < points["mouth_left"]["y"]


@needs_mtcnn
def test_base64_and_multipart_give_the_same_faces(client: FlaskClient) -> None:
    photo = _jpeg(_astronaut())
    assert _base64(client, "/v1/detect/faces", photo).json["data"] == \
        _multipart(client, "/v1/detect/faces", photo).json["data"]


@needs_mtcnn
def test_no_face_on_a_cat_or_a_coffee_and_one_result_per_image_in_order(client: FlaskClient) -> None:
    photos = [_jpeg(Image.fromarray(skimage_data.chelsea())), _jpeg(_astronaut()),
              _jpeg(Image.fromarray(skimage_data.coffee()))]
    data = _multipart(client, "/v1/detect/faces", *photos).json["data"]
    assert [(d["index"], len(d["faces"])) for d in data] == [(0, 0), (1, 1), (2, 0)]
    assert (data[0]["width"], data[0]["height"]) == (451, 300)


@needs_mtcnn
def test_thresholds_and_count_apply_per_request(client: FlaskClient) -> None:
    photo = _jpeg(_astronaut())
    assert _base64(client, "/v1/detect/faces", photo, score_threshold=1.0).json["data"][0]["faces"] == []
    assert len(_base64(client, "/v1/detect/faces", photo, max_detections=1, iou_threshold=0.0).json["data"][0]
               ["faces"]) == 1
    head = _astronaut().crop((130, 20, 330, 220))
    two = Image.new("RGB", (400, 200))  # seen at 128 x 64: faces of ~28 pixels
    two.paste(head, (0, 0))
    two.paste(ImageOps.mirror(head), (200, 0))
    both = _base64(client, "/v1/detect/faces", _jpeg(two)).json["data"][0]["faces"]
    assert len(both) == 2 and both[0]["score"] >= both[1]["score"]  # best first
    assert len(_base64(client, "/v1/detect/faces", _jpeg(two), max_detections=1).json["data"][0]["faces"]) == 1


@needs_mtcnn
@pytest.mark.parametrize("size", [(1, 1), (5, 300), (19, 19)])
def test_an_image_too_small_for_a_face_has_none(client: FlaskClient, size: tuple[int, int]) -> None:
    r = _base64(client, "/v1/detect/faces", _jpeg(Image.new("RGB", size, "gray")))
    assert r.status_code == 200 and r.json["data"][0]["faces"] == []


@needs_mtcnn
def test_bad_input_is_a_4xx(client: FlaskClient) -> None:
    route, photo = "/v1/detect/faces", _jpeg(_astronaut())
    assert _multipart(client, route, b"not an image").json["error"]["code"] == "invalid_image"
    assert _base64(client, route, b"GIF89a broken").status_code == 400
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (400, 400, 3), dtype=np.uint8))
    assert _multipart(client, route, _jpeg(noise.resize((600, 600)))).status_code == 413  # over max_image_bytes
    assert _multipart(client, route, _jpeg(Image.new("RGB", (1200, 1000)))).status_code == 413  # over max_image_pixels
    assert _multipart(client, route, *[photo] * 9).json["error"]["code"] == "too_many_inputs"
    for value in ("nan", "inf", "-1", "1.5"):
        r = _multipart(client, route, photo, score_threshold=value)
        assert r.status_code == 400 and r.json["error"]["param"] == "score_threshold", value
    assert _multipart(client, route, photo, iou_threshold="NaN").status_code == 400
    assert _multipart(client, route, photo, max_detections="0").status_code == 400
    body = json.dumps({"image": base64.b64encode(photo).decode(), "score_threshold": float("nan")})  # NaN: not JSON
    assert client.post(route, data=body, content_type="application/json").status_code == 400


def test_a_model_of_another_task_cannot_serve_faces(client: FlaskClient) -> None:
    r = _base64(client, "/v1/detect/faces", _jpeg(_astronaut()), model="tiny-timm")
    assert r.status_code == 400 and r.json["error"]["code"] == "wrong_model_task"


# -- embeddings

@needs_dlib
def test_embeddings_tell_the_same_person_from_another(client: FlaskClient) -> None:
    astronaut = _astronaut()
    photos = [astronaut, ImageOps.mirror(astronaut), astronaut.point(lambda v: int(v * 0.6)),
              Image.fromarray(skimage_data.camera()).convert("RGB")]
    r = _multipart(client, "/v1/faces/embeddings", *[_jpeg(p) for p in photos])
    assert r.status_code == 200, r.json
    assert r.json["model"] == "dlib-faces" and r.json["usage"]["prompt_tokens"] == 4
    faces = [item["faces"] for item in r.json["data"]]
    assert [len(f) for f in faces] == [1, 1, 1, 1]
    vectors = [np.array(f[0]["embedding"]) for f in faces]
    assert all(v.shape == (128,) for v in vectors)
    assert sorted(faces[0][0]["landmarks"]) == sorted(LANDMARKS)
    same = [np.linalg.norm(vectors[0] - v) for v in vectors[1:3]]
    other = np.linalg.norm(vectors[0] - vectors[3])
    # Seen at 128 pixels the faces are 15-25 pixels wide: the same person stays well within dlib's 0.6, and the
    # cameraman lies further off than either copy (the full-size margin is tested in tests/integration).
    assert max(same) < 0.6 and other > max(same) + 0.2, (same, other)


@needs_dlib
def test_embeddings_of_an_image_without_faces_are_empty(client: FlaskClient) -> None:
    r = _base64(client, "/v1/faces/embeddings", _jpeg(Image.fromarray(skimage_data.coffee())))
    assert r.status_code == 200 and r.json["data"][0]["faces"] == []


@needs_dlib
def test_models_list_says_where_the_face_models_run(client: FlaskClient) -> None:
    data = {m["id"]: m for m in client.get("/v1/models").json["data"]}
    assert data["mtcnn"]["task"] == "face-detection" and data["mtcnn"]["endpoints"] == ["/v1/detect/faces"]
    assert data["dlib-faces"]["device"] == "cpu" and data["dlib-faces"]["dimensions"] == 128
    assert data["dlib-faces"]["endpoints"] == ["/v1/faces/embeddings"]


# -- what the adapter keeps: score, overlap and count, per request

def test_selection_keeps_the_best_of_overlapping_faces_above_the_score() -> None:
    torch = pytest.importorskip("torch")
    from maas_server.models.faces import Prepared, _clipped, _selected

    boxes = np.array([[10, 10, 50, 50, 0.80], [20, 10, 60, 50, 0.95], [70, 70, 90, 90, 0.75], [-5, 90, 30, 130, 0.9]],
                     np.float32)  # the first two overlap with IoU 0.6; the last reaches past the image's edges
    points = np.zeros((4, 5, 2), np.float32)

    def kept(**query: float) -> list[tuple[float, float, float, float, float]]:
        item = Prepared(torch.zeros((100, 120, 3), dtype=torch.uint8), DetectionQuery(None, **query))
        return [(f.score, f.box.x1, f.box.y1, f.box.x2, f.box.y2) for f in _selected(boxes, points, item)]

    scores = [round(s, 2) for s, *_ in kept(score_threshold=0.0, iou_threshold=0.5)]
    assert scores == [0.95, 0.9, 0.75]  # best first; the 0.80 face overlapped the 0.95 one
    assert len(kept(score_threshold=0.0, iou_threshold=0.7)) == 4
    assert [round(s, 2) for s, *_ in kept(score_threshold=0.85)] == [0.95, 0.9]
    assert len(kept(score_threshold=0.0, max_detections=2)) == 2
    edge = _selected(boxes, points, Prepared(torch.zeros((100, 120, 3), dtype=torch.uint8),
                                             DetectionQuery(None, score_threshold=0.89)))[1]
    assert _clipped(edge, 120, 100).box == Box(0.0, 90.0, 30.0, 100.0)  # in the 120 x 100 image, as clients get it
    assert edge.box == Box(-5.0, 90.0, 30.0, 130.0)  # MTCNN's own box: what dlib aligns the face from


# -- personal data: never in the log

SECRET_COORDINATE = 0.123456789  # in every fake face's box, landmarks and vector


class FakeFaces:
    """Serves either face method with one fixed face per image (no packages needed)."""

    def __init__(self, task: str) -> None:
        self.task = task

    def describe(self) -> ModelDescription:
        return ModelDescription(device="cpu", dtype="float32")

    def batch_methods(self):
        method = DETECT_FACES if self.task == "face-detection" else EMBED_FACES
        return {method: BatchMethod(lambda query: query.image.size, self.run)}

    def run(self, sizes):
        face = Detected("face", 0.99, Box(SECRET_COORDINATE, 1, 2, 2), ((SECRET_COORDINATE, 1.0),) * 5,
                        (SECRET_COORDINATE,) * 3 if self.task == "face-embedding" else None)
        return [Detections(width, height, [face]) for width, height in sizes]

    def warmup(self) -> None:
        pass


def test_face_routes_never_log_their_bodies_even_with_log_content(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings({"data_dir": tmp_path / "data", "log_content": True}, file={
        "server": {"cache_dir": str(tmp_path / "cache")}, "models": [
        {"name": "words", "task": "embeddings", "source": "unused"},
        {"name": "faces", "task": "face-detection", "source": "unused"},
        {"name": "vectors", "task": "face-embedding", "source": "unused"}]})
    app = create_app(settings, loader=lambda model, server: FakeFaces(model.task) if "face" in model.task
                     else fake_loader(model, server))
    assert app.extensions["maas"].registry.wait_until_loaded(10)
    client = app.test_client()
    photo = base64.b64encode(_jpeg(Image.new("RGB", (40, 30), "white"))).decode()
    with caplog.at_level(logging.INFO, logger="maas.access"):
        assert client.post("/v1/embeddings", json={"input": "debug-visible-prompt"}).status_code == 200
        for route in ("/v1/detect/faces", "/v1/faces/embeddings"):
            answer = client.post(route, json={"image": photo})
            assert answer.status_code == 200 and str(SECRET_COORDINATE) in answer.get_data(as_text=True)
            assert client.post(route, json={"image": photo, "score_threshold": 2}).status_code == 400
        for typo in ("/v1/detect/faces/", "/V1/faces/embeddings", "/v1/faces/embeddings/x"):
            assert client.post(typo, json={"image": photo}).status_code in (404, 405, 308)
    lines = [JsonFormatter().format(r) for r in caplog.records if r.name == "maas.access"]
    assert len(lines) == 8 and "debug-visible-prompt" in lines[0]  # log_content is on...
    for line in lines[1:]:  # ...yet neither the image nor what was found in it reaches the log
        assert photo[:40] not in line and str(SECRET_COORDINATE) not in line and '"body"' not in line, line
