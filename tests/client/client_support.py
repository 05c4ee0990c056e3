"""Helpers shared by the client tests: payloads, SSE bodies, and a fake HTTP adapter for
bodies that arrive in pieces or break (the ``Client(session=...)`` seam)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import requests

BASE = "http://maas.test"
FIXTURES = Path(__file__).parent / "fixtures"

MAAS_MODELS: dict[str, Any] = {
    "object": "list",
    "data": [
        {
            "id": "smollm2-135m-instruct", "object": "model", "created": 1764360000,
            "owned_by": "maas", "task": "text-generation",
            "endpoints": ["/v1/completions", "/v1/chat/completions"],
            "device": "cpu", "dtype": "float32", "ready": True,
        },
        {
            "id": "all-minilm-l6-v2", "object": "model", "created": 1764360000,
            "owned_by": "maas", "task": "embeddings",
            "endpoints": ["/v1/embeddings", "/v1/classify/text"],
            "device": "cpu", "dtype": "float32", "ready": True,
        },
        {
            "id": "efficientnet-lite0", "object": "model", "created": 1764360000,
            "owned_by": "maas", "task": "image-classification",
            "endpoints": ["/v1/classify/image"], "device": "cpu", "dtype": "float32",
            "ready": True,
        },
        {
            "id": "en-core-web-sm", "object": "model", "created": 1764360000,
            "owned_by": "maas", "task": "token-classification",
            "endpoints": ["/v1/entities"], "device": "cpu", "dtype": "float32",
            "max_characters": 100000, "ready": True,
        },
    ],
}

# What POST /v1/entities answers for "Angela Merkel visited Paris in 2019." (spaCy: no scores).
ENTITIES: dict[str, Any] = {
    "object": "list", "model": "en-core-web-sm",
    "data": [{"index": 0, "entities": [
        {"text": "Angela Merkel", "label": "PERSON", "start": 0, "end": 13, "score": None},
        {"text": "Paris", "label": "GPE", "start": 22, "end": 27, "score": None},
        {"text": "2019", "label": "DATE", "start": 31, "end": 35, "score": None},
    ]}],
    "usage": {"prompt_tokens": 7, "completion_tokens": 0, "total_tokens": 7},
}


def sse(*payloads: Any, done: bool = True) -> bytes:
    """An event stream body: one ``data:`` event per payload, then ``[DONE]``."""
    events = [f"data: {json.dumps(p) if not isinstance(p, str) else p}\n\n" for p in payloads]
    return ("".join(events) + ("data: [DONE]\n\n" if done else "")).encode()


def completion_chunk(text: str, finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "cmpl-1", "object": "text_completion", "created": 1, "model": "smollm2-135m-instruct",
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}],
    }


def load_fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())




class FakeRaw:
    """Stands in for urllib3's response: yields the given chunks as they are asked for,
    and records whether the client closed it."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self.closed = False

    def stream(self, chunk_size: int | None = None, decode_content: bool | None = None) -> Iterator[bytes]:
        for chunk in self._chunks:
            if self.closed:
                raise AssertionError("read after the response was closed")
            yield chunk

    def read(self, *args: Any, **kwargs: Any) -> bytes:
        return b"".join(self._chunks)

    def close(self) -> None:
        self.closed = True

    def release_conn(self) -> None:
        pass


class FakeAdapter(requests.adapters.BaseAdapter):
    """A requests transport adapter answering from a queue: the ``Client(session=...)`` seam."""

    def __init__(self) -> None:
        super().__init__()
        self.queue: list[Callable[[requests.PreparedRequest], requests.Response]] = []
        self.requests: list[requests.PreparedRequest] = []
        self.raws: list[FakeRaw] = []
        self.send_options: list[dict[str, Any]] = []  # timeout, stream, ... per request

    def add(
        self,
        chunks: Iterable[bytes],
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> FakeRaw:
        raw = FakeRaw(chunks)

        def respond(request: requests.PreparedRequest) -> requests.Response:
            response = requests.Response()
            response.status_code = status
            response.headers.update({"Content-Type": "text/event-stream", **(headers or {})})
            response.raw = raw
            response.request = request
            response.url = request.url or ""
            return response

        self.queue.append(respond)
        self.raws.append(raw)
        return raw

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.requests.append(request)
        self.send_options.append(kwargs)
        return self.queue.pop(0)(request)

    def close(self) -> None:
        pass
