"""Explanations: token weights for text, Grad-CAM grids for images, on their own lane and limits."""

from __future__ import annotations

import base64
import io
import threading
from typing import Any

import numpy as np
from flask.testing import FlaskClient
from PIL import Image

from maas_server.models.contract import EXPLAIN_LANE, BatchMethod, Method, ModelDescription
from maas_server.models.explain_io import EXPLAIN_TEXT, Explained, TextExplanation
from maas_server.models.text_io import CLASSIFY_TEXT, EMBED, ZERO_SHOT_TEXT, Scores, TextItem, Vector
from maas_server.runtime.registry import ModelRegistry
from maas_server.settings import load_settings


def _png(size: tuple[int, int] = (40, 30)) -> bytes:
    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 255, (6, 6, 3), dtype=np.uint8)).resize(size, Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_text_explanation_weighs_each_token_of_the_input_for_the_top_label(client: FlaskClient) -> None:
    texts = ["I love this film", "terrible, never again"]
    r = client.post("/v1/classify/text", json={"model": "tiny-sentiment", "input": texts, "explain": True})
    assert r.status_code == 200, r.json
    for text, item in zip(texts, r.json["data"]):
        explanation = item["explanation"]
        assert explanation["label"] == item["labels"][0]["label"]
        tokens = explanation["tokens"]
        assert tokens and all(text[t["start"]:t["end"]] == t["text"] for t in tokens)
        weights = [t["weight"] for t in tokens]
        assert all(-1 <= w <= 1 for w in weights) and max(abs(w) for w in weights) == 1.0
    plain = client.post("/v1/classify/text", json={"model": "tiny-sentiment", "input": texts}).json
    assert [d["labels"] for d in plain["data"]] == [d["labels"] for d in r.json["data"]]  # the same answer
    assert all(d["explanation"] is None for d in plain["data"])


def test_an_explanation_picks_a_model_that_can_explain_and_refuses_one_that_cannot(client: FlaskClient) -> None:
    r = client.post("/v1/classify/text", json={"input": "hello", "explain": True})
    assert r.status_code == 200 and r.json["model"] == "tiny-sentiment"  # the zero-shot model cannot explain
    refused = client.post("/v1/classify/text", json={"model": "tiny-embed", "input": "hello", "labels": ["a", "b"],
                                                     "explain": True})
    assert refused.status_code == 400 and refused.json["error"]["code"] == "wrong_model_task"
    assert "explain-text" in refused.json["error"]["message"]


def test_explanations_have_their_own_input_limit(client: FlaskClient) -> None:
    limit = client.application.extensions["maas"].config.max_explain_inputs
    r = client.post("/v1/classify/text", json={"model": "tiny-sentiment", "input": ["x"] * (limit + 1),
                                               "explain": True})
    assert r.status_code == 400 and r.json["error"]["param"] == "explain"
    plain = client.post("/v1/classify/text", json={"model": "tiny-sentiment", "input": ["x"] * (limit + 1)})
    assert plain.status_code == 200


def test_image_explanation_is_a_grid_in_unit_range_with_an_optional_png_overlay(client: FlaskClient) -> None:
    for model in ("tiny-timm", "tiny-resnet"):
        image = base64.b64encode(_png()).decode()
        r = client.post("/v1/classify/image", json={"model": model, "image": [image], "explain_overlay": True})
        assert r.status_code == 200, r.json
        explanation = r.json["data"][0]["explanation"]
        grid = np.array(explanation["grid"])
        assert explanation["label"] == r.json["data"][0]["labels"][0]["label"]
        assert grid.shape == (16, 16) and grid.min() >= 0 and grid.max() <= 1
        overlay = Image.open(io.BytesIO(base64.b64decode(explanation["overlay_png"])))
        assert overlay.format == "PNG" and overlay.mode == "RGB"


def test_image_explanation_by_multipart_form_without_overlay(client: FlaskClient) -> None:
    r = client.post("/v1/classify/image", content_type="multipart/form-data",
                    data={"model": "tiny-timm", "explain": "true", "image": [(io.BytesIO(_png()), "a.png")]})
    assert r.status_code == 200, r.json
    assert r.json["data"][0]["explanation"]["overlay_png"] is None


class SlowExplainer:
    """A text classifier whose explanations block until the test lets them go."""

    task = "text-classification"

    def __init__(self) -> None:
        self.release, self.explaining = threading.Event(), threading.Event()

    def describe(self) -> ModelDescription:
        return ModelDescription(device="cpu", dtype="float32")

    def batch_methods(self) -> dict[Method[Any, Any], BatchMethod]:
        return {CLASSIFY_TEXT: BatchMethod(lambda item: item, self.classify),
                EXPLAIN_TEXT: BatchMethod(lambda item: item, self.explain, lane=EXPLAIN_LANE)}

    def warmup(self) -> None:
        pass

    def classify(self, items: list[TextItem]) -> list[Scores]:
        return [Scores([("yes", 1.0)], 1) for _ in items]

    def explain(self, items: list[TextItem]) -> list[Explained]:
        self.explaining.set()
        assert self.release.wait(10)
        return [Explained(Scores([("yes", 1.0)], 1), TextExplanation("yes", [])) for _ in items]


def test_a_running_explanation_does_not_hold_up_plain_requests_to_the_same_model() -> None:
    model = SlowExplainer()
    config = load_settings(file={"models": [{"name": "c", "task": "text-classification", "source": "x"}]})
    registry = ModelRegistry(config, loader=lambda c, s: model)
    registry.load_all()
    entry = registry.get("c")
    assert entry is not None and set(entry.lanes) == {"default", EXPLAIN_LANE}
    try:
        slow = entry.runner_for(EXPLAIN_TEXT).submit(EXPLAIN_TEXT, TextItem("why?"))
        assert model.explaining.wait(5)
        quick = entry.runner_for(CLASSIFY_TEXT).submit(CLASSIFY_TEXT, TextItem("quick"))
        assert quick.result(5).labels == [("yes", 1.0)]
        assert not slow.done()
        model.release.set()
        assert slow.result(5).explanation.label == "yes"
    finally:
        model.release.set()
        registry.stop()


def test_models_without_an_explain_lane_get_one_runner() -> None:
    class Embedder:
        task = "embeddings"

        def describe(self) -> ModelDescription:
            return ModelDescription(device="cpu", dtype="float32")

        def batch_methods(self) -> dict[Method[Any, Any], BatchMethod]:
            return {EMBED: BatchMethod(lambda t: t, lambda ts: [Vector([1.0], 1) for _ in ts]),
                    ZERO_SHOT_TEXT: BatchMethod(lambda t: t, lambda ts: [])}

        def warmup(self) -> None:
            pass

    registry = ModelRegistry(load_settings(file={"models": [{"name": "e", "task": "embeddings", "source": "x"}]}),
                             loader=lambda c, s: Embedder())
    registry.load_all()
    entry = registry.get("e")
    assert entry is not None and list(entry.lanes) == ["default"]
    registry.stop()
