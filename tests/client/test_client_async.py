"""AsyncClient: the same requests as Client, the same retry rules, and streams that close.

Requests are checked against the sync client's (both clients build them with one builder, so
these tests fail if a method's arguments stop reaching the wire the same way); the async side
runs on ``httpx.MockTransport``, the ``http_client=`` seam.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any, TypeVar

import httpx
import pytest
import requests
import responses

import maas_client as maas
from tests.client.client_support import BASE, ENTITIES, MAAS_MODELS, completion_chunk, sse

T = TypeVar("T")
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
WAV = b"RIFF\x00\x00\x00\x00WAVEfmt "
CHAT = {"id": "c", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


Handler = Callable[[httpx.Request], httpx.Response]


def async_client(handler: Handler, **options: Any) -> maas.AsyncClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return maas.AsyncClient(base_url=BASE, http_client=http, **options)


# ---------------------------------------------------------------------- one surface


def test_async_client_has_every_client_method_with_the_same_parameters() -> None:
    public = [name for name, _ in inspect.getmembers(maas.Client, inspect.isfunction) if not name.startswith("_")]
    assert {"chat", "chat_parse", "create_response", "usage", "translate", "models"} <= set(public)
    for name in public:
        sync, asynchronous = getattr(maas.Client, name), getattr(maas.AsyncClient, name)
        sync_params = list(inspect.signature(sync).parameters.values())
        async_params = list(inspect.signature(asynchronous).parameters.values())
        assert [(p.name, p.kind, p.default, p.annotation) for p in sync_params] == \
               [(p.name, p.kind, p.default, p.annotation) for p in async_params], name
        if name not in ("close", "with_options"):
            assert inspect.iscoroutinefunction(asynchronous), name


def test_with_options_shares_the_http_client_and_keeps_the_class() -> None:
    client = maas.AsyncClient(base_url=BASE)
    copy = client.with_options(max_retries=5)
    assert isinstance(copy, maas.AsyncClient) and copy.max_retries == 5 and client.max_retries == 2
    assert copy._transport.http is client._transport.http


# Each method once, with the arguments that reach the wire; both clients must send the same request.
CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any], Any]] = [
    ("generate", ("Once",), {"model": "m", "max_tokens": 3, "seed": 1, "extra_body": {"top_k": 0}},
     {"choices": [{"text": " upon"}]}),
    ("chat", ("Hi",), {"model": "m", "tools": [maas.Tool.define("f", {"type": "object"})], "tool_choice": "auto",
                       "response_format": {"type": "json_object"}}, CHAT),
    ("create_response", ("Hi",), {"model": "m", "instructions": "Be brief."},
     {"output": [{"type": "message", "content": [{"type": "output_text", "text": "Hello"}]}]}),
    ("embed", (["a", "b"],), {"model": "e"}, {"data": [{"embedding": [1.0]}, {"index": 1, "embedding": [0.0]}]}),
    ("classify_text", ("I love it",), {"labels": ["pos", "neg"]}, {"data": [{"labels": []}]}),
    ("classify_image", (PNG,), {"model": "r", "top_k": 2}, {"data": [{"labels": []}]}),
    ("extract_entities", ("Angela Merkel visited Paris in 2019.",), {"model": "n"}, ENTITIES),
    ("detect_pii", (["Mail ada@example.com", "x"],), {"model": "p", "types": ["EMAIL_ADDRESS"], "include_text": True},
     {"data": [{"entities": [{"type": "EMAIL_ADDRESS", "start": 5, "end": 20, "score": 1.0}]}]}),
    ("redact", ("Mail ada@example.com",), {"model": "p", "style": "mask", "mask_char": "#"},
     {"data": [{"entities": [], "redacted": "Mail ###############"}]}),
    ("detect_objects", ([PNG, PNG],), {"model": "y", "score_threshold": 0.5}, {"data": [{"objects": []}]}),
    ("detect_faces", (PNG,), {"model": "f"}, {"data": [{"faces": []}]}),
    ("embed_faces", (PNG,), {"model": "f"}, {"data": [{"faces": []}]}),
    ("read_text", ([PNG, PNG],), {"model": "o", "score_threshold": 0.6}, {"data": [{"text": "Hi", "lines": []}]}),
    ("label_roles", (["The boy broke it."],), {"model": "s"},
     {"data": [{"words": ["The", "boy", "broke", "it", "."], "verbs": [], "method": "dependency-rules"}]}),
    ("classify_scene", (PNG,), {"model": "r"}, {"data": [{"top_level": None, "label": None, "evidence": []}]}),
    ("embed_images", (PNG,), {"model": "r"}, {"data": [{"embedding": [1.0]}]}),
    ("transcribe", (WAV,), {"model": "w", "language": "en", "words": True}, {"text": "hi"}),
    ("translate", (WAV,), {"model": "w", "temperature": 0.2}, {"text": "hi", "task": "translate"}),
    ("models", (), {}, MAAS_MODELS),
    ("model", ("a b",), {}, MAAS_MODELS["data"][0]),
    ("usage", (), {"since": "2026-01-01", "extra_query": {"x": "1"}}, {"data": []}),
]


def _multipart(content_type: str, body: bytes) -> list[tuple[str, str]]:
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    parts = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        parts.append((name, payload.decode("latin-1") if part.get_filename() is None else f"<file {len(payload)}>"))
    return parts


def _wire(method: str, url: str, content_type: str, body: bytes) -> dict[str, Any]:
    if content_type.startswith("multipart/"):
        sent: Any = _multipart(content_type, body)
    else:
        sent = json.loads(body) if body else None
    return {"method": method, "url": url, "body": sent}


@pytest.mark.parametrize(("name", "args", "kwargs", "answer"), CALLS, ids=[call[0] for call in CALLS])
def test_both_clients_send_the_same_request_and_read_the_same_result(
    mocked: responses.RequestsMock, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], answer: Any
) -> None:
    seen_sync: list[dict[str, Any]] = []

    def sync_answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        if request.path_url == "/v1/models" and name != "models":  # the default model's lookup
            return 200, {}, json.dumps(MAAS_MODELS)
        body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
        seen_sync.append(_wire(request.method or "", request.url or "", request.headers.get("Content-Type", ""), body))
        return 200, {"X-Request-ID": "req-1"}, json.dumps(answer)

    for verb in (responses.GET, responses.POST):
        mocked.add_callback(verb, re.compile(re.escape(BASE) + "/.*"), sync_answer)
    sync_result = getattr(maas.Client(base_url=BASE), name)(*args, **kwargs)

    seen_async: list[dict[str, Any]] = []

    def async_answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models" and name != "models":
            return httpx.Response(200, json=MAAS_MODELS)
        seen_async.append(_wire(request.method, str(request.url), request.headers.get("Content-Type", ""),
                                request.read()))
        return httpx.Response(200, json=answer, headers={"X-Request-ID": "req-1"})

    async def call() -> Any:
        async with async_client(async_answer) as client:
            return await getattr(client, name)(*args, **kwargs)

    async_result = run(call())
    assert seen_async == seen_sync and len(seen_sync) == 1
    results = async_result if isinstance(async_result, list) else [async_result]
    assert type(async_result) is type(sync_result)
    assert all(item.request_id == "req-1" for item in results)
    if isinstance(sync_result, list):
        assert [r.model_dump() for r in sync_result] == [r.model_dump() for r in async_result]
    else:
        assert sync_result.model_dump() == async_result.model_dump()


# ---------------------------------------------------------------------- retries


def test_retries_honour_retry_after_and_keep_the_request_id(async_sleeps: list[float]) -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["X-Request-ID"])
        if len(seen) < 3:
            return httpx.Response(503, json={"error": {"message": "busy"}}, headers={"Retry-After": "7"})
        return httpx.Response(200, json={"data": []})

    assert run(async_client(answer).models()) == []
    assert async_sleeps == [7.0, 7.0] and len(set(seen)) == 1


@pytest.mark.parametrize(("status", "headers", "attempts", "error"), [
    (400, {}, 1, maas.BadRequestError),
    (500, {"x-should-retry": "false"}, 1, maas.InternalServerError),
    (503, {}, 3, maas.ServiceUnavailableError),
    (400, {"x-should-retry": "true"}, 3, maas.BadRequestError),
])
def test_the_retry_rules_are_the_sync_clients(status: int, headers: dict[str, str], attempts: int,
                                              error: type[maas.APIStatusError]) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json={"error": {"message": "no", "code": "c"}},
                              headers={"X-Request-ID": "req-9", **headers})

    with pytest.raises(error) as caught:
        run(async_client(answer).models())
    assert len(seen) == attempts
    assert (caught.value.status_code, caught.value.code, caught.value.request_id) == (status, "c", "req-9")
    assert isinstance(caught.value.response, httpx.Response)


def test_connection_errors_are_retried_then_raised() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    with pytest.raises(maas.APIConnectionError, match="Could not reach the server"):
        run(async_client(answer, max_retries=1).models())


def test_a_timeout_is_an_api_timeout_error() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow")

    with pytest.raises(maas.APITimeoutError):
        run(async_client(answer, max_retries=0).models())


# ---------------------------------------------------------------------- streams


class Body(httpx.AsyncByteStream):
    """A streamed body that records whether the client closed it."""

    def __init__(self, chunks: list[bytes], fail: BaseException | None = None) -> None:
        self.chunks, self.fail, self.closed = chunks, fail, False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        if self.fail is not None:
            raise self.fail

    async def aclose(self) -> None:
        self.closed = True


def streaming(*bodies: Body) -> maas.AsyncClient:
    queue = list(bodies)

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Type": "text/event-stream"}, stream=queue.pop(0))

    return async_client(answer)


def test_async_for_yields_typed_chunks_and_iter_text_skips_empty_ones() -> None:
    role = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
    text = {"choices": [{"index": 0, "delta": {"content": "Hel"}}]}
    body = Body([sse(role, text, {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})])

    async def go() -> list[str]:
        stream = await streaming(body).chat("Hi", model="m", stream=True)
        return [piece async for piece in stream.iter_text()]

    assert run(go()) == ["Hel"]
    assert body.closed


def test_leaving_the_async_with_block_early_closes_the_response() -> None:
    body = Body([sse(completion_chunk("a"), done=False), sse(completion_chunk("b"))])

    async def go() -> str:
        async with await streaming(body).generate("x", model="m", stream=True) as stream:
            async for chunk in stream:
                return chunk.text
        raise AssertionError("no chunk")

    assert run(go()) == "a"
    assert body.closed


def test_a_stream_cut_before_its_first_event_is_retried_and_after_it_raised() -> None:
    cut = httpx.RemoteProtocolError("peer closed connection")
    first, second = Body([b": keep-alive\n\n"], fail=cut), Body([sse(completion_chunk("hi"), done=False)], fail=cut)

    async def go() -> list[str]:
        received = []
        stream = await streaming(first, second).generate("x", model="m", stream=True)
        with pytest.raises(maas.APIConnectionError, match="broke mid-stream"):
            async for chunk in stream:
                received.append(chunk.text)
        return received

    assert run(go()) == ["hi"]
    assert first.closed and second.closed


def test_cancelling_the_task_closes_the_stream() -> None:
    release = threading.Event()
    body_closed: list[bool] = []

    class Endless(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield sse(completion_chunk("a"), done=False)
            while not release.is_set():
                await asyncio.sleep(0.01)
            yield b""

        async def aclose(self) -> None:
            body_closed.append(True)

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Type": "text/event-stream"}, stream=Endless())

    async def go() -> None:
        stream = await async_client(answer).generate("x", model="m", stream=True)
        got_first = asyncio.Event()

        async def consume() -> None:
            async for _ in stream:
                got_first.set()

        task = asyncio.create_task(consume())
        await got_first.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    try:
        run(go())
    finally:
        release.set()
    assert body_closed == [True]
