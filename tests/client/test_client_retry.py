"""The retry policy: what is retried, how long it waits, and how often."""

from __future__ import annotations

import email.utils
import time

import pytest
import requests
import responses

import maas_client as maas
from maas_client import _retry
from tests.client.client_support import BASE, FakeAdapter, completion_chunk, sse

MODELS_URL = f"{BASE}/v1/models"
OK = {"object": "list", "data": []}


def fail_then_succeed(
    mocked: responses.RequestsMock, failures: int, status: int = 503, headers: dict[str, str] | None = None
) -> None:
    for _ in range(failures):
        mocked.get(MODELS_URL, status=status, json={"error": {"message": "busy"}}, headers=headers)
    mocked.get(MODELS_URL, json=OK)


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
def test_transient_statuses_are_retried(mocked: responses.RequestsMock, status: int) -> None:
    fail_then_succeed(mocked, 2, status)
    assert maas.Client(base_url=BASE).models() == []
    assert len(mocked.calls) == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
def test_client_errors_are_never_retried(
    mocked: responses.RequestsMock, status: int, sleeps: list[float]
) -> None:
    fail_then_succeed(mocked, 1, status)
    with pytest.raises(maas.APIStatusError):
        maas.Client(base_url=BASE, max_retries=5).models()
    assert len(mocked.calls) == 1
    assert sleeps == []


def test_a_500_the_server_marks_x_should_retry_false_is_not_retried(
    mocked: responses.RequestsMock, sleeps: list[float]
) -> None:
    fail_then_succeed(mocked, 1, 500, headers={"x-should-retry": "false"})
    with pytest.raises(maas.InternalServerError):
        maas.Client(base_url=BASE, max_retries=5).models()
    assert len(mocked.calls) == 1 and sleeps == []


def test_x_should_retry_true_is_honoured_even_for_a_4xx(mocked: responses.RequestsMock) -> None:
    fail_then_succeed(mocked, 1, 400, headers={"x-should-retry": "true"})
    assert maas.Client(base_url=BASE).models() == []
    assert len(mocked.calls) == 2


def test_connection_errors_and_timeouts_are_retried(mocked: responses.RequestsMock) -> None:
    mocked.get(MODELS_URL, body=requests.ConnectionError("refused"))
    mocked.get(MODELS_URL, body=requests.ConnectTimeout("slow"))
    mocked.get(MODELS_URL, json=OK)
    assert maas.Client(base_url=BASE).models() == []
    assert len(mocked.calls) == 3


def test_retries_stop_after_max_retries_and_raise_the_last_error(
    mocked: responses.RequestsMock,
) -> None:
    fail_then_succeed(mocked, 5)
    with pytest.raises(maas.ServiceUnavailableError):
        maas.Client(base_url=BASE).models()  # default: 2 retries
    assert len(mocked.calls) == 3


def test_max_retries_per_call_via_with_options(mocked: responses.RequestsMock) -> None:
    fail_then_succeed(mocked, 4)
    client = maas.Client(base_url=BASE, max_retries=0)
    assert client.with_options(max_retries=5).models() == []
    assert len(mocked.calls) == 5
    assert client.max_retries == 0


def test_max_retries_zero_sends_once(mocked: responses.RequestsMock) -> None:
    fail_then_succeed(mocked, 1)
    with pytest.raises(maas.ServiceUnavailableError):
        maas.Client(base_url=BASE, max_retries=0).models()
    assert len(mocked.calls) == 1


def test_retry_honours_retry_after_seconds(mocked: responses.RequestsMock, sleeps: list[float]) -> None:
    fail_then_succeed(mocked, 1, 503, {"Retry-After": "7"})
    maas.Client(base_url=BASE).models()
    assert sleeps == [7.0]


def test_retry_honours_retry_after_http_date(mocked: responses.RequestsMock, sleeps: list[float]) -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    fail_then_succeed(mocked, 1, 429, {"Retry-After": when})
    maas.Client(base_url=BASE).models()
    assert len(sleeps) == 1 and 27.0 <= sleeps[0] <= 30.0


def test_retry_after_is_capped(mocked: responses.RequestsMock, sleeps: list[float]) -> None:
    fail_then_succeed(mocked, 1, 503, {"Retry-After": "3600"})
    maas.Client(base_url=BASE).models()
    assert sleeps == [_retry.MAX_RETRY_AFTER] == [60.0]


def test_retry_after_in_the_past_means_now(mocked: responses.RequestsMock, sleeps: list[float]) -> None:
    fail_then_succeed(mocked, 1, 503, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    maas.Client(base_url=BASE).models()
    assert sleeps == [0.0]


def test_without_retry_after_backoff_is_exponential_with_jitter(
    mocked: responses.RequestsMock, sleeps: list[float]
) -> None:
    fail_then_succeed(mocked, 5, 503, {"Retry-After": "soon"})  # unparseable: ignored
    maas.Client(base_url=BASE, max_retries=5).models()
    assert len(sleeps) == 5
    for attempt, slept in enumerate(sleeps):
        full = min(0.5 * 2**attempt, _retry.MAX_BACKOFF)
        assert 0.75 * full <= slept <= full


def test_wait_is_zeroed_by_patching_the_wait_function(
    mocked: responses.RequestsMock, sleeps: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_retry, "retry_wait", lambda state: 0.0)
    fail_then_succeed(mocked, 2, 503, {"Retry-After": "9"})
    maas.Client(base_url=BASE).models()
    assert sleeps == [0.0, 0.0]


def test_stream_that_fails_before_its_first_event_is_retried(
    fake: FakeAdapter, fake_client: maas.Client
) -> None:
    def cut() -> object:
        yield b": keep-alive\n\n"
        raise requests.exceptions.ChunkedEncodingError("connection reset")

    first = fake.add(cut())
    fake.add([b"", sse(completion_chunk("hello"))])
    with fake_client.generate("a", model="m", stream=True) as stream:
        assert [chunk.text for chunk in stream] == ["hello"]
    assert len(fake.requests) == 2
    assert first.closed


def test_stream_that_fails_after_its_first_event_is_not_retried(
    fake: FakeAdapter, fake_client: maas.Client
) -> None:
    def cut() -> object:
        yield sse(completion_chunk("hello"), done=False)
        raise requests.exceptions.ChunkedEncodingError("connection reset")

    fake.add(cut())
    fake.add([sse(completion_chunk("again"))])
    received = []
    with pytest.raises(maas.APIConnectionError, match="broke mid-stream"):
        for chunk in fake_client.generate("a", model="m", stream=True):
            received.append(chunk.text)
    assert received == ["hello"]
    assert len(fake.requests) == 1


def test_stream_error_status_is_retried(fake: FakeAdapter, fake_client: maas.Client) -> None:
    fake.add([b'{"error": {"message": "loading"}}'], status=503,
             headers={"Content-Type": "application/json", "Retry-After": "1"})
    fake.add([sse(completion_chunk("ok"))])
    with fake_client.generate("a", model="m", stream=True) as stream:
        assert [chunk.text for chunk in stream] == ["ok"]
    assert len(fake.requests) == 2


def test_retry_keeps_the_request_id(mocked: responses.RequestsMock) -> None:
    fail_then_succeed(mocked, 1)
    maas.Client(base_url=BASE).models()
    ids = {call.request.headers["X-Request-ID"] for call in mocked.calls}
    assert len(ids) == 1
