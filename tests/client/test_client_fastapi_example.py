"""examples/fastapi_service.py: one AsyncClient for the app's lifetime, against a mocked maas (httpx's
MockTransport) through FastAPI's TestClient."""

from __future__ import annotations

import json
import runpy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from maas_client import _async_transport
from tests.client.client_support import BASE, MAAS_MODELS, sse

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402 (after the importorskip)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fastapi_service.py"


class MockMaas:
    """A mocked maas: the requests it got, and the httpx clients made to reach it."""

    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.made: list[Any] = []


@pytest.fixture
def maas(monkeypatch: pytest.MonkeyPatch) -> MockMaas:
    mock = MockMaas()
    sent, made = mock.sent, mock.made

    def answer(request: Any) -> Any:
        sent.append(request)
        if request.url.path == "/v1/models":
            return httpx.Response(200, json=MAAS_MODELS)
        if request.url.path == "/v1/embeddings":
            vectors = [[1.0, 0.0], [0.0, 1.0], [0.8, 0.6]]  # query, then two documents
            return httpx.Response(200, json={"data": [{"index": i, "embedding": v} for i, v in enumerate(vectors)]})
        if request.url.path == "/v1/chat/completions":
            if json.loads(request.content)["messages"][0]["content"] == "fail":
                return httpx.Response(400, json={"error": {"message": "too long", "type": "invalid_request_error"}})
            chunks = [{"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}}]}
                      for text in ("Par", "is.")]
            return httpx.Response(200, headers={"Content-Type": "text/event-stream"}, content=sse(*chunks))
        return httpx.Response(404, json={"error": {"message": "no route"}})

    def new_http_client() -> Any:
        made.append(httpx.AsyncClient(transport=httpx.MockTransport(answer)))
        return made[-1]

    monkeypatch.setattr(_async_transport, "new_http_client", new_http_client)
    monkeypatch.setenv("MAAS_BASE_URL", BASE)
    return mock


@pytest.fixture
def service(maas: MockMaas) -> Iterator[TestClient]:
    app = runpy.run_path(str(EXAMPLE))["app"]
    with TestClient(app) as client:
        yield client


def test_search_ranks_the_documents_by_their_embeddings(service: TestClient, maas: MockMaas) -> None:
    answer = service.post("/search", json={"query": "bread", "documents": ["Change the tyre.", "Knead the dough."]})
    assert answer.status_code == 200
    assert answer.json() == [{"document": "Knead the dough.", "score": 0.8},
                             {"document": "Change the tyre.", "score": 0.0}]
    embedded = json.loads(maas.sent[-1].content)["input"]
    assert embedded == ["bread", "Change the tyre.", "Knead the dough."]


def test_ask_streams_the_answer(service: TestClient) -> None:
    answer = service.post("/ask", json={"question": "Capital of France?"})
    assert (answer.status_code, answer.text) == (200, "Paris.")


def test_a_maas_400_is_the_callers_400(service: TestClient) -> None:
    answer = service.post("/ask", json={"question": "fail"})
    assert answer.status_code == 400 and "too long" in answer.json()["detail"]


def test_one_client_serves_every_request_and_closes_with_the_app(maas: MockMaas) -> None:
    app = runpy.run_path(str(EXAMPLE))["app"]
    with TestClient(app) as client:
        for _ in range(3):
            assert client.get("/health").json()["models"][0] == "smollm2-135m-instruct"
    assert len(maas.made) == 1 and maas.made[0].is_closed
    assert [request.url.path for request in maas.sent] == ["/v1/models"] * 3  # one pool, no cache: 3 calls


def test_two_hundred_concurrent_requests_share_one_client_on_one_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """200 /search calls at once from one event loop: all answered, through one AsyncClient, and overlapping
    in maas up to the client's own limit (each maas call waits until that many are in flight)."""
    import asyncio

    app = runpy.run_path(str(EXAMPLE))["app"]
    in_flight, most = 0, 0
    full = asyncio.Event()

    async def answer(request: Any) -> Any:
        nonlocal in_flight, most
        if request.url.path == "/v1/models":
            return httpx.Response(200, json=MAAS_MODELS)
        in_flight += 1
        most = max(most, in_flight)
        if in_flight == _async_transport.IN_FLIGHT:
            full.set()
        await asyncio.wait_for(full.wait(), timeout=30)
        in_flight -= 1
        return httpx.Response(200, json={"data": [{"index": 0, "embedding": [1.0, 0.0]},
                                                  {"index": 1, "embedding": [0.6, 0.8]}]})

    made: list[Any] = []

    def new_http_client() -> Any:
        made.append(httpx.AsyncClient(transport=httpx.MockTransport(answer)))
        return made[-1]

    monkeypatch.setattr(_async_transport, "new_http_client", new_http_client)
    monkeypatch.setenv("MAAS_BASE_URL", BASE)

    async def main() -> list[int]:
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://service") as caller:
            answers = await asyncio.gather(*(caller.post("/search", json={"query": f"q{n}", "documents": ["d"]})
                                             for n in range(200)))
        return [response.status_code for response in answers]

    assert asyncio.run(main()) == [200] * 200
    assert len(made) == 1 and most == _async_transport.IN_FLIGHT
