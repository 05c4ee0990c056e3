"""A stream's summary (``stream.final()``): text, finish reason and usage, gathered as chunks are read.

Every test runs on :class:`Stream` and :class:`AsyncStream` over the same event-stream body.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

import maas_client as maas
from maas_client._base_client import returning
from tests.client.client_support import completion_chunk, sse

USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


class Body:
    """The chunks of one body, and what the stream asked of it."""

    def __init__(self, body: bytes) -> None:
        self.chunks = [body[i:i + 7] for i in range(0, len(body), 7)]  # events split across chunks
        self.read = 0
        self.closed = False

    def sync(self) -> Any:
        for chunk in self.chunks:
            self.read += 1
            yield chunk

    async def asynchronous(self) -> AsyncIterator[bytes]:
        for chunk in self.sync():
            yield chunk

    def close(self) -> None:
        self.closed = True

    async def aclose(self) -> None:
        self.closed = True


class Both:
    """One stream type, driven the same way for both: ``take(n)`` reads n chunks, ``final()`` the summary."""

    def __init__(self, kind: str, body: Body, chunk: type[Any]) -> None:
        parse = returning(chunk)
        self.loop = asyncio.new_event_loop() if kind == "async" else None
        if self.loop is None:
            self.stream: Any = maas.Stream(body.sync(), parse=lambda p: parse(p, "r-1"), close=body.close,
                                           request_id="r-1")
        else:
            self.stream = maas.AsyncStream(body.asynchronous(), parse=lambda p: parse(p, "r-1"), close=body.aclose,
                                           request_id="r-1")

    def _run(self, make: Callable[[], Any]) -> Any:
        return make() if self.loop is None else self.loop.run_until_complete(make())

    def take(self, count: int) -> list[Any]:
        if self.loop is None:
            return [next(self.stream) for _ in range(count)]
        return [self.loop.run_until_complete(self.stream.__anext__()) for _ in range(count)]

    def final(self) -> maas.StreamSummary:
        return self._run(self.stream.final)  # type: ignore[no-any-return]

    def close(self) -> None:
        self._run(self.stream.close)

    def finish(self) -> None:
        if self.loop is not None:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()


def chat_chunk(content: str | None = None, finish: str | None = None, index: int = 0, usage: Any = None) -> Any:
    choices = [] if usage else [{"index": index, "delta": {"content": content}, "finish_reason": finish}]
    return {"object": "chat.completion.chunk", "choices": choices, "usage": usage}


@pytest.fixture(params=["sync", "async"])
def stream_of(request: pytest.FixtureRequest) -> Iterator[Callable[[Body, type[Any]], Both]]:
    made: list[Both] = []

    def make(body: Body, chunk: type[Any]) -> Both:
        made.append(Both(request.param, body, chunk))
        return made[-1]

    yield make
    for stream in made:
        stream.finish()


def test_a_chat_streams_summary_is_its_text_finish_reason_and_usage(stream_of: Any) -> None:
    body = Body(sse(chat_chunk(""), chat_chunk("Hel"), chat_chunk("lo", "length"), chat_chunk(usage=USAGE)))
    stream = stream_of(body, maas.ChatCompletionChunk)
    summary = stream.final()
    assert (summary.text, summary.finish_reason, summary.chunks) == ("Hello", "length", 4)
    assert summary.usage == maas.Usage(**USAGE) and summary.request_id == "r-1"
    assert body.closed


def test_the_summary_of_a_stream_read_in_a_loop_reads_nothing_again(stream_of: Any) -> None:
    body = Body(sse(completion_chunk("Once"), completion_chunk(" upon", "stop")))
    stream = stream_of(body, maas.CompletionChunk)
    assert [chunk.text for chunk in stream.take(2)] == ["Once", " upon"]
    assert stream.final().text == "Once upon" and body.read == len(body.chunks)  # only [DONE] was left
    assert stream.final().text == "Once upon" and body.read == len(body.chunks)


def test_other_choices_stay_out_of_the_summary(stream_of: Any) -> None:
    body = Body(sse(chat_chunk("a"), chat_chunk("X", index=1), chat_chunk("b", "stop"), chat_chunk("Y", "length", 1)))
    summary = stream_of(body, maas.ChatCompletionChunk).final()
    assert (summary.text, summary.finish_reason) == ("ab", "stop")


def test_a_stream_closed_early_sums_up_what_was_read(stream_of: Any) -> None:
    body = Body(sse(completion_chunk("Once"), completion_chunk(" upon"), completion_chunk(" a", "length")))
    stream = stream_of(body, maas.CompletionChunk)
    stream.take(1)
    stream.close()
    summary = stream.final()
    assert (summary.text, summary.finish_reason, summary.chunks) == ("Once", None, 1)


def test_a_responses_stream_ends_with_the_final_status_and_usage(stream_of: Any) -> None:
    whole = {"output": [], "status": "incomplete", "usage": {"input_tokens": 4, "output_tokens": 2, "total_tokens": 6}}
    body = Body(sse({"type": "response.created", "response": {**whole, "status": "in_progress", "usage": None}},
                    {"type": "response.output_text.delta", "delta": "Hi"},
                    {"type": "response.output_text.delta", "delta": "!"},
                    {"type": "response.incomplete", "response": whole}))
    summary = stream_of(body, maas.ResponseEvent).final()
    assert (summary.text, summary.finish_reason) == ("Hi!", "incomplete")
    assert summary.usage == maas.ResponseUsage(input_tokens=4, output_tokens=2, total_tokens=6)
