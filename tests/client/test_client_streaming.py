"""Server-sent events: the decoder's edge cases and the Stream's lifecycle."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
import urllib3

import maas_client as maas
from maas_client._streaming import ServerSentEvent, Stream, iter_events, iter_lines
from tests.client.client_support import FIXTURES, FakeAdapter, completion_chunk, sse


def events(*chunks: bytes) -> list[ServerSentEvent]:
    return list(iter_events(chunks))


# ---------------------------------------------------------------------- lines


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_lines_end_in_any_newline(newline: bytes) -> None:
    assert list(iter_lines([b"a" + newline + b"b" + newline])) == [b"a", b"b"]


def test_crlf_split_across_chunks_is_one_line_end() -> None:
    assert list(iter_lines([b"a\r", b"\nb\r", b"\n", b"\n"])) == [b"a", b"b", b""]
    assert list(iter_lines([b"a\r", b"", b"\n", b"\r\n"])) == [b"a", b""]


def test_a_line_split_across_chunks_is_joined() -> None:
    assert list(iter_lines([b"da", b"ta: x", b"yz\n"])) == [b"data: xyz"]


def test_a_last_line_without_newline_is_kept() -> None:
    assert list(iter_lines([b"a\nb"])) == [b"a", b"b"]


# ---------------------------------------------------------------------- events


def test_comments_are_ignored() -> None:
    assert events(b": ping\n\ndata: 1\n: inside\n\n") == [ServerSentEvent(data="1")]


def test_multi_line_data_is_joined_with_newlines() -> None:
    assert events(b"data: a\ndata:b\ndata\n\n") == [ServerSentEvent(data="a\nb\n")]


def test_keep_alive_blank_lines_dispatch_nothing() -> None:
    assert events(b"\n\n\r\n\n", b"data: x\n\n\n\n") == [ServerSentEvent(data="x")]


def test_event_and_id_fields_are_read() -> None:
    assert events(b"event: error\nid: 7\ndata: {}\n\ndata: y\n\n") == [
        ServerSentEvent(data="{}", event="error", id="7"),
        ServerSentEvent(data="y", event="message", id="7"),
    ]


def test_crlf_stream_split_byte_by_byte() -> None:
    body = b"data: {\"a\": 1}\r\n\r\n: c\r\ndata: [DONE]\r\n\r\n"
    assert [e.data for e in events(*[body[i : i + 1] for i in range(len(body))])] == ['{"a": 1}', "[DONE]"]


def test_utf8_split_inside_a_character_decodes() -> None:
    body = "data: héllo ✓\n\n".encode()
    middle = body.index("✓".encode()) + 1
    assert events(body[:middle], body[middle:]) == [ServerSentEvent(data="héllo ✓")]


def test_an_unterminated_last_event_is_dropped() -> None:
    assert events(b"data: 1\n\ndata: 2") == [ServerSentEvent(data="1")]


def test_a_leading_bom_is_ignored() -> None:
    assert events("\ufeffdata: 1\n\n".encode()) == [ServerSentEvent(data="1")]


# ---------------------------------------------------------------------- Stream


def make_stream(chunks: Iterator[bytes] | list[bytes], closed: list[bool]) -> Stream[dict]:
    return Stream(chunks, parse=lambda payload: payload, close=lambda: closed.append(True))


def test_done_ends_the_stream_and_closes_it() -> None:
    closed: list[bool] = []
    stream = make_stream([b'data: {"n": 1}\n\ndata: [DONE]\n\ndata: {"n": 2}\n\n'], closed)
    assert list(stream) == [{"n": 1}]
    assert closed == [True]


def test_a_body_that_ends_before_done_is_a_connection_error() -> None:
    closed: list[bool] = []
    stream = make_stream([b'data: {"n": 1}\n\n'], closed)
    assert next(stream) == {"n": 1}
    with pytest.raises(maas.APIConnectionError, match="before \\[DONE\\]"):
        next(stream)
    assert closed == [True]


def test_an_error_event_raises_with_the_server_fields() -> None:
    closed: list[bool] = []
    error = b'data: {"error": {"type": "server_error", "message": "CUDA out of memory", "code": "oom"}}\n\n'
    stream = make_stream([b'data: {"n": 1}\n\n', error, b"data: [DONE]\n\n"], closed)
    assert next(stream) == {"n": 1}
    with pytest.raises(maas.APIStreamError, match="CUDA out of memory") as caught:
        next(stream)
    assert (caught.value.type, caught.value.code) == ("server_error", "oom")
    assert closed == [True]


def test_an_event_named_error_raises() -> None:
    stream = make_stream([b'event: error\ndata: {"message": "bad"}\n\n'], [])
    with pytest.raises(maas.APIStreamError, match="bad"):
        next(stream)


def test_an_event_that_is_not_json_raises_an_api_error() -> None:
    stream = make_stream([b"data: {nope\n\n"], [])
    with pytest.raises(maas.APIError, match="not JSON"):
        next(stream)


def test_close_stops_iteration_at_once() -> None:
    closed: list[bool] = []
    stream = make_stream([b'data: {"n": 1}\n\ndata: {"n": 2}\n\ndata: [DONE]\n\n'], closed)
    assert next(stream) == {"n": 1}
    stream.close()
    stream.close()
    assert closed == [True]
    assert list(stream) == []


# ---------------------------------------------------------------------- through the client


def test_stream_close_closes_the_response(fake: FakeAdapter, fake_client: maas.Client) -> None:
    raw = fake.add([sse(completion_chunk("a"), done=False), sse(completion_chunk("b"))])
    stream = fake_client.generate("x", model="m", stream=True)
    assert next(stream).text == "a"
    assert not raw.closed
    stream.close()
    assert raw.closed


def test_leaving_the_with_block_closes_the_response(fake: FakeAdapter, fake_client: maas.Client) -> None:
    raw = fake.add([sse(completion_chunk("a"), done=False), sse(completion_chunk("b"))])
    with fake_client.generate("x", model="m", stream=True) as stream:
        assert next(stream).text == "a"
    assert raw.closed


def test_breaking_out_of_a_with_block_on_an_exception_closes_the_response(
    fake: FakeAdapter, fake_client: maas.Client
) -> None:
    raw = fake.add([sse(completion_chunk("a"))])
    with pytest.raises(KeyError), fake_client.chat("x", model="m", stream=True):
        raise KeyError("user code failed")
    assert raw.closed


def test_events_reach_the_caller_as_they_arrive(fake: FakeAdapter, fake_client: maas.Client) -> None:
    received: list[str] = []

    def body() -> Iterator[bytes]:
        yield sse(completion_chunk("first"), done=False)
        # The client asks for more only after handing the first chunk to the caller.
        assert received == ["first"], "the client read ahead instead of streaming"
        yield sse(completion_chunk("second"))

    fake.add(body())
    for chunk in fake_client.generate("x", model="m", stream=True):
        received.append(chunk.text)
    assert received == ["first", "second"]


def test_a_connection_cut_mid_stream_raises_api_connection_error(
    fake: FakeAdapter, fake_client: maas.Client
) -> None:
    def body() -> Iterator[bytes]:
        yield sse(completion_chunk("a"), done=False)
        raise requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead")

    raw = fake.add(body())
    stream = fake_client.generate("x", model="m", stream=True)
    assert next(stream).text == "a"
    with pytest.raises(maas.APIConnectionError, match="broke mid-stream") as caught:
        next(stream)
    assert not isinstance(caught.value, maas.APITimeoutError)
    assert raw.closed


def test_a_read_timeout_mid_stream_raises_api_timeout_error(
    fake: FakeAdapter, fake_client: maas.Client
) -> None:
    def body() -> Iterator[bytes]:
        yield sse(completion_chunk("a"), done=False)
        # What requests raises when urllib3's read times out while a body is streamed.
        raise requests.exceptions.ConnectionError(urllib3.exceptions.ReadTimeoutError(None, "/", "timed out"))  # type: ignore[arg-type]

    fake.add(body())
    stream = fake_client.generate("x", model="m", stream=True)
    next(stream)
    with pytest.raises(maas.APITimeoutError):
        next(stream)


def test_an_error_event_before_any_chunk_is_raised_not_retried(
    fake: FakeAdapter, fake_client: maas.Client
) -> None:
    fake.add([b'data: {"error": {"message": "queue full"}}\n\ndata: [DONE]\n\n'])
    with pytest.raises(maas.APIStreamError, match="queue full"):
        fake_client.generate("x", model="m", stream=True)
    assert len(fake.requests) == 1


def test_a_json_answer_to_a_stream_request_is_explained(
    fake: FakeAdapter, fake_client: maas.Client
) -> None:
    raw = fake.add([b'{"choices": []}'], headers={"Content-Type": "application/json"})
    with pytest.raises(maas.APIError, match="asked for a stream"):
        fake_client.generate("x", model="m", stream=True)
    assert raw.closed


def test_openai_style_recorded_stream(fake: FakeAdapter, fake_client: maas.Client) -> None:
    fake.add([(FIXTURES / "openai_chat_stream.txt").read_bytes()])
    with fake_client.chat("Hi", model="gpt-4o-mini", stream=True) as stream:
        chunks = list(stream)
    assert "".join(chunk.text for chunk in chunks) == "Hello! How can I help?"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 15
