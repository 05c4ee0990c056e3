"""The worker's memory budget: large work reserves its estimated peak before it decodes or explains
anything, is refused at once past the budget, and gives the reservation back when the request ends."""

from __future__ import annotations

import io
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from maas_server.api.images import IMAGE_CALL_BYTES
from maas_server.api.memory import MB, MemoryBudget

BUDGET = 512 * MB


@pytest.fixture
def budget(app: Flask, monkeypatch: pytest.MonkeyPatch) -> MemoryBudget:
    small = MemoryBudget(BUDGET)
    monkeypatch.setattr(app.extensions["maas"], "memory", small)
    return small


def _png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (120, 30, 200)).save(buffer, "PNG")
    return buffer.getvalue()


def _classify(client: FlaskClient, *blobs: bytes) -> Any:
    files = [(io.BytesIO(blob), f"{i}.png") for i, blob in enumerate(blobs)]
    return client.post("/v1/classify/image", data={"model": "tiny-timm", "image": files},
                       content_type="multipart/form-data")


def test_an_image_call_reserves_its_peak_and_gives_it_back(client: FlaskClient, budget: MemoryBudget) -> None:
    seen: list[int] = []
    original = budget.reserve

    def spy(nbytes: int, what: str, param: str | None = None) -> None:
        original(nbytes, what, param)
        seen.append(budget.held)

    budget.reserve = spy  # type: ignore[method-assign]
    r = _classify(client, _png((800, 600)), _png((64, 64)))
    assert r.status_code == 200, r.json
    # the larger decode (4 bytes a pixel), two prepared inputs, the bodies, the model's batch
    assert seen and seen[0] >= 800 * 600 * 4 + IMAGE_CALL_BYTES
    assert budget.held == 0


def test_past_the_budget_an_image_call_is_a_503_at_once_with_retry_after(
        client: FlaskClient, budget: MemoryBudget) -> None:
    budget._held = BUDGET - 32 * MB  # requests in flight elsewhere
    r = _classify(client, _png((64, 64)))
    assert r.status_code == 503 and r.json["error"]["code"] == "overloaded", r.json
    assert "memory budget" in r.json["error"]["message"] and r.headers["Retry-After"] == "1"
    assert budget.held == BUDGET - 32 * MB


def test_a_call_that_could_never_fit_the_budget_is_a_413(client: FlaskClient, budget: MemoryBudget,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(budget, "limit", 64 * MB)
    r = _classify(client, _png((64, 64)))
    assert r.status_code == 413 and "memory_budget_mb" in r.json["error"]["message"], r.json
    assert budget.held == 0


def test_a_call_that_fails_after_reserving_gives_the_reservation_back(client: FlaskClient,
                                                                       budget: MemoryBudget) -> None:
    corrupt = _png((300, 300))[:-40]  # the header passes; decoding fails
    r = _classify(client, corrupt)
    assert r.status_code == 400 and r.json["error"]["code"] == "invalid_image", r.json
    assert budget.held == 0


def test_explanations_reserve_their_working_memory(client: FlaskClient, budget: MemoryBudget,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(budget, "limit", 100 * MB)  # room for one explanation (64 MB), not two
    one = client.post("/v1/classify/text", json={"model": "tiny-sentiment", "input": "fine", "explain": True})
    assert one.status_code == 200, one.json
    two = client.post("/v1/classify/text", json={"model": "tiny-sentiment", "input": ["a", "b"], "explain": True})
    assert two.status_code == 413 and two.json["error"]["param"] == "explain", two.json
    assert budget.held == 0
