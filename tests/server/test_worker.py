"""The worker's socket deadlines, on a real socket pair: a header that trickles in is cut off at its
deadline, a reader that stops reading ends the response, and a graceful close never lingers."""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Iterator

import pytest

from maas_server.ops.worker import (
    DRAIN_LIMIT,
    ClosesOnUnreadBody,
    DeadlineSocket,
    SlowClient,
    SocketTimeouts,
    error_for,
    json_error_bytes,
)

SHORT = SocketTimeouts(header_timeout=0.4, body_timeout=0.4, idle_timeout=0.3, write_timeout=0.3)


@pytest.fixture
def pair() -> Iterator[tuple[DeadlineSocket, socket.socket]]:
    server_side, client = socket.socketpair()
    server = DeadlineSocket.adopt(server_side, SHORT)
    yield server, client
    server.close()
    client.close()


def test_a_header_trickling_in_a_byte_at_a_time_is_cut_off_at_its_deadline(
        pair: tuple[DeadlineSocket, socket.socket]) -> None:
    server, client = pair
    stop = threading.Event()

    def trickle() -> None:  # never silent for longer than the idle timeout
        while not stop.is_set():
            client.send(b"X")
            stop.wait(0.1)

    sender = threading.Thread(target=trickle, daemon=True)
    sender.start()
    server.setblocking(True)  # what gthread does when a thread takes up the request: the deadline starts
    received = 0
    try:
        with pytest.raises(SlowClient):
            for _ in range(50):  # 5 s of trickle: far past the 0.4 s deadline, and bounded if it is ignored
                received += len(server.recv(1))
    finally:
        stop.set()
        sender.join(2)
    assert received >= 2  # bytes kept coming: it was the deadline, not an idle gap, that ended it


def test_a_reader_that_stops_reading_ends_the_response_as_a_client_that_left(
        pair: tuple[DeadlineSocket, socket.socket]) -> None:
    server, _client = pair  # the client never reads
    server.setblocking(True)
    server.begin_response_phase()
    outcome: list[BaseException] = []

    def write() -> None:
        try:
            while True:  # fills both socket buffers, then a write makes no progress
                server.sendall(b"data: x\n\n" * 1000)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            outcome.append(exc)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    writer.join(5)  # a write that blocks forever would leave the thread running: the test fails, not hangs
    assert len(outcome) == 1 and isinstance(outcome[0], BrokenPipeError)


def test_a_graceful_close_only_drains_what_has_arrived(pair: tuple[DeadlineSocket, socket.socket]) -> None:
    server, _client = pair  # the client never closes its side
    server.setblocking(True)
    server.shutdown(socket.SHUT_WR)
    server.settimeout(2.0)  # gunicorn's close_graceful lingers this long for the client to close
    with pytest.raises(BlockingIOError):  # not TimeoutError after 2 s: it did not wait for the client
        server.recv(4096)


def test_parse_errors_become_json_envelopes() -> None:
    status, code, _ = error_for(SlowClient())
    assert (status, code) == (408, "request_timeout")
    response = json_error_bytes(status, code, "slow")
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 Request Timeout") and b"application/json" in head
    assert b'"code": "request_timeout"' in body


class _GunicornResponse:
    """What the wrapper sees of gunicorn's Response: start_response is its bound method."""

    closed = False

    def start_response(self, status: str, headers: list[tuple[str, str]]) -> None:
        pass

    def force_close(self) -> None:
        self.closed = True


class _Unreadable(io.RawIOBase):
    def read(self, size: int = -1) -> bytes:
        raise SlowClient()


def _answer_without_reading(environ: dict[str, object], start_response: object) -> list[bytes]:
    return [b"refused"]


@pytest.mark.parametrize("body, closes", [
    (b"", False),
    (b"x" * 1000, False),  # small: drained, the connection stays open
    (b"x" * DRAIN_LIMIT, False),
    (b"x" * (DRAIN_LIMIT + 1), True),  # gunicorn would give up on it: say Connection: close
    (b"x" * 5_000_000, True),
])
def test_a_body_left_unread_is_drained_or_the_connection_closes(body: bytes, closes: bool) -> None:
    response = _GunicornResponse()
    result = ClosesOnUnreadBody(_answer_without_reading)({"wsgi.input": io.BytesIO(body)}, response.start_response)
    assert result == [b"refused"] and response.closed is closes


def test_a_body_the_app_read_keeps_the_connection_and_an_unreadable_one_closes_it() -> None:
    def reads_it(environ: dict[str, object], start_response: object) -> list[bytes]:
        environ["wsgi.input"].read()  # type: ignore[attr-defined]
        return [b"ok"]

    response = _GunicornResponse()
    ClosesOnUnreadBody(reads_it)({"wsgi.input": io.BytesIO(b"x" * 500_000)}, response.start_response)
    assert not response.closed
    ClosesOnUnreadBody(_answer_without_reading)({"wsgi.input": _Unreadable()}, response.start_response)
    assert response.closed
