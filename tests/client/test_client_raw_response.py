"""``client.with_raw_response``: status, headers and the HTTP response, then the usual result.

Each test runs on both clients (the ``raw`` fixture): the sync one on ``responses``, the async one
on ``httpx.MockTransport``, both answering from the same queue of canned answers.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import requests
import responses

import maas_client as maas
from tests.client.client_support import BASE, MAAS_MODELS, completion_chunk, sse

EMBEDDINGS = {"object": "list", "model": "all-minilm-l6-v2", "data": [{"index": 0, "embedding": [0.6, 0.8]}],
              "usage": {"prompt_tokens": 1, "completion_tokens": 0, "total_tokens": 1}}
Answer = tuple[int, dict[str, str], bytes]


class Server:
    """Canned answers, in order, for either client; ``GET /v1/models`` always answers the model list."""

    def __init__(self) -> None:
        self.answers: list[Answer] = []
        self.paths: list[str] = []

    def add(self, status: int = 200, body: Any = None, headers: dict[str, str] | None = None,
            raw: bytes | None = None) -> None:
        content = raw if raw is not None else json.dumps(body).encode()
        kind = "text/event-stream" if raw is not None else "application/json"
        self.answers.append((status, {"Content-Type": kind, **(headers or {})}, content))

    def answer(self, path: str) -> Answer:
        if path == "/v1/models":
            return 200, {"Content-Type": "application/json"}, json.dumps(MAAS_MODELS).encode()
        self.paths.append(path)
        return self.answers.pop(0)


class Calls:
    """One client's raw view, called the same way for both (``calls.raw.embed(...)`` returns the RawResponse)."""

    def __init__(self, client: maas.Client | maas.AsyncClient) -> None:
        self.client = client
        self.loop = asyncio.new_event_loop() if isinstance(client, maas.AsyncClient) else None

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        method = getattr(self.client.with_raw_response, name)
        return method(*args, **kwargs) if self.loop is None else self.loop.run_until_complete(method(*args, **kwargs))

    def drain(self, stream: Any) -> list[Any]:
        if self.loop is None:
            with stream:
                return list(stream)

        async def drain() -> list[Any]:
            async with stream:
                return [item async for item in stream]

        return self.loop.run_until_complete(drain())

    def close(self) -> None:
        if self.loop is None:
            self.client.close()  # type: ignore[unused-coroutine]
            return
        self.loop.run_until_complete(self.client.close())  # type: ignore[arg-type]
        self.loop.close()


@pytest.fixture
def server() -> Server:
    return Server()


@pytest.fixture(params=["Client", "AsyncClient"])
def calls(request: pytest.FixtureRequest, server: Server) -> Iterator[Calls]:
    if request.param == "Client":
        with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
            def sync_answer(sent: requests.PreparedRequest) -> tuple[int, dict[str, str], bytes]:
                return server.answer(sent.path_url.split("?")[0])

            for verb in (responses.GET, responses.POST):
                mocked.add_callback(verb, re.compile(re.escape(BASE) + "/.*"), sync_answer)
            wrapper = Calls(maas.Client(base_url=BASE))
            yield wrapper
            wrapper.close()
        return

    def async_answer(sent: httpx.Request) -> httpx.Response:
        status, headers, content = server.answer(sent.url.path)
        return httpx.Response(status, headers=headers, content=content)

    wrapper = Calls(maas.AsyncClient(base_url=BASE, http_client=httpx.AsyncClient(
        transport=httpx.MockTransport(async_answer))))
    yield wrapper
    wrapper.close()


# ---------------------------------------------------------------------- whole answers


def test_a_raw_response_has_status_headers_and_the_parsed_result(calls: Calls, server: Server) -> None:
    server.add(body=EMBEDDINGS, headers={"X-Request-ID": "req-7", "X-RateLimit-Remaining-Requests": "59"})
    raw = calls.call("embed", "Hi")
    assert isinstance(raw, maas.RawResponse)
    assert (raw.status_code, raw.request_id, raw.method) == (200, "req-7", "POST")
    assert raw.url == f"{BASE}/v1/embeddings"
    assert raw.headers["x-ratelimit-remaining-requests"] == "59"  # case-insensitive, as both libraries' headers
    assert raw.json() == EMBEDDINGS and json.loads(raw.text) == EMBEDDINGS and not raw.is_stream
    result = raw.parse()
    assert isinstance(result, maas.Embeddings) and result.vectors == [[0.6, 0.8]] and result.request_id == "req-7"
    assert raw.parse() is result  # validated once


def test_the_http_response_is_the_http_librarys_own(calls: Calls, server: Server) -> None:
    server.add(body=EMBEDDINGS)
    raw = calls.call("embed", "Hi", model="e")
    expected = requests.Response if calls.loop is None else httpx.Response
    assert isinstance(raw.http_response, expected) and raw.http_response.status_code == 200


def test_the_default_model_is_looked_up_through_the_raw_view(calls: Calls, server: Server) -> None:
    server.add(body=EMBEDDINGS)
    raw = calls.call("embed", "Hi")  # no model: GET /v1/models first, read as a list, not a raw response
    assert raw.parse().vectors and server.paths == ["/v1/embeddings"]


def test_retries_taken_counts_the_attempts_after_the_first(calls: Calls, server: Server, sleeps: list[float]) -> None:
    server.add(503, {"error": {"message": "busy", "type": "server_error"}}, headers={"Retry-After": "1"})
    server.add(body=EMBEDDINGS)
    raw = calls.call("embed", "Hi", model="e")
    assert (raw.retries_taken, raw.status_code, sleeps) == (1, 200, [1.0])


def test_a_refused_call_raises_as_it_does_without_the_view(calls: Calls, server: Server) -> None:
    server.add(400, {"error": {"message": "bad", "type": "invalid_request_error", "param": "input"}})
    with pytest.raises(maas.BadRequestError) as caught:
        calls.call("embed", "Hi", model="e")
    assert caught.value.param == "input"


def test_a_body_the_client_cannot_read_fails_on_parse_not_on_the_call(calls: Calls, server: Server) -> None:
    server.add(body={"data": "not a list"}, headers={"X-Request-ID": "req-9"})
    raw = calls.call("embed", "Hi", model="e")
    assert raw.status_code == 200 and raw.json() == {"data": "not a list"}
    with pytest.raises(maas.APIError, match="not a valid Embeddings") as caught:
        raw.parse()
    assert caught.value.request_id == "req-9"


# ---------------------------------------------------------------------- streams


def test_a_raw_stream_has_its_headers_before_it_is_iterated(calls: Calls, server: Server) -> None:
    server.add(raw=sse(completion_chunk("Once"), completion_chunk(" upon", "length")), headers={"X-Request-ID": "s-1"})
    raw = calls.call("generate", "x", model="m", stream=True)
    assert (raw.status_code, raw.request_id, raw.is_stream) == (200, "s-1", True)
    assert raw.headers["content-type"].startswith("text/event-stream")
    with pytest.raises(maas.MaasError, match="iterating"):
        _ = raw.content
    stream = raw.parse()
    assert isinstance(stream, maas.Stream if calls.loop is None else maas.AsyncStream)
    assert stream is raw.parse() and stream.request_id == "s-1"
    assert [chunk.text for chunk in calls.drain(stream)] == ["Once", " upon"]


# ---------------------------------------------------------------------- the views


@pytest.mark.parametrize("client_class", [maas.Client, maas.AsyncClient])
def test_the_raw_view_offers_every_method_of_its_client(client_class: type[Any]) -> None:
    methods = {name for name, _ in inspect.getmembers(client_class, inspect.isfunction)
               if not name.startswith("_") and name not in ("close", "with_options")}
    view = type(client_class(base_url=BASE).with_raw_response)
    offered = {name for name in vars(view) if not name.startswith("_")}
    assert offered == methods


def test_the_raw_view_leaves_its_client_as_it_was(server: Server) -> None:
    client = maas.Client(base_url=BASE)
    view = client.with_raw_response
    assert view._client._transport is client._transport and view._client._raw and not client._raw
    assert client._owns_transport and not view._client._owns_transport  # closing the copy keeps the pool


def test_the_view_method_reads_as_a_method_in_help() -> None:
    described: Callable[..., Any] = vars(maas.client.ClientWithRawResponse)["chat"]
    assert "RawResponse" in (described.__doc__ or "")
