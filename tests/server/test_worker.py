"""The worker's socket deadlines, on a real socket pair: a header that trickles in is cut off at its
deadline, a reader that stops reading ends the response, and a graceful close never lingers."""

from __future__ import annotations

import errno
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from gunicorn.http.body import Body, ChunkedReader, LengthReader
from gunicorn.http.unreader import IterUnreader

from maas_server.api._common import client_gone
from maas_server.serve.worker import (
    ACCEPT_PAUSE_S,
    DESCRIPTOR_RESERVE,
    DRAIN_LIMIT,
    ClosesOnUnreadBody,
    DeadlineSocket,
    MaasWorker,
    SlowClient,
    SocketTimeouts,
    connection_limit,
    error_for,
    json_error_bytes,
    unread_bytes,
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


def test_a_client_that_leaves_after_the_body_deadline_is_still_seen_leaving(
        pair: tuple[DeadlineSocket, socket.socket]) -> None:
    """The app polls `client_gone` while a non-streamed request computes; past the body deadline the
    peek must report the hang-up (so the work is cancelled), not raise a 408 and leave it running."""
    server, client = pair
    server.setblocking(True)
    server.begin_response_phase()
    time.sleep(SHORT.body_timeout + 0.1)  # the body deadline has passed while the model worked
    assert not client_gone(server)  # still connected
    client.close()
    assert client_gone(server)


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


def _body(data: bytes, chunked: bool = False) -> Body:
    """A request body as gunicorn hands it to the app: Content-Length, or chunked transfer coding."""
    if not chunked:
        return Body(LengthReader(IterUnreader([data]), len(data)))
    coded = b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data) if data else b"0\r\n\r\n"
    return Body(ChunkedReader(_Request(), IterUnreader([coded])))


class _Request:
    trailers: list[tuple[str, str]] = []  # noqa: RUF012 - what ChunkedReader writes trailers into
    cfg = None


def _answer(read: int | None) -> object:
    def app(environ: dict[str, Any], start_response: object) -> list[bytes]:
        if read != 0:
            environ["wsgi.input"].read(read)
        return [b"answer"]
    return app


@pytest.mark.parametrize("size, read, closes", [
    (0, 0, False),
    (1000, 0, False),  # gunicorn drains what is left after the response and keeps the connection
    (DRAIN_LIMIT, 0, False),
    (DRAIN_LIMIT + 1, 0, True),  # more than gunicorn drains: say Connection: close
    (5_000_000, 0, True),
    (5_000_000, 5_000_000 - DRAIN_LIMIT, False),  # read all but what gunicorn drains
    (500_000, None, False),  # read to the end
])
def test_a_body_left_unread_past_what_gunicorn_drains_closes_the_connection(size: int, read: int | None,
                                                                            closes: bool) -> None:
    response = _GunicornResponse()
    result = ClosesOnUnreadBody(_answer(read))({"wsgi.input": _body(b"x" * size)}, response.start_response)
    assert result == [b"answer"] and response.closed is closes


@pytest.mark.parametrize("read, closes", [(0, True), (None, False)])
def test_a_chunked_body_closes_unless_it_was_read_to_its_end(read: int | None, closes: bool) -> None:
    response = _GunicornResponse()
    ClosesOnUnreadBody(_answer(read))({"wsgi.input": _body(b"x" * 1000, chunked=True)}, response.start_response)
    assert response.closed is closes


def test_the_wrapper_never_reads_the_body_itself() -> None:
    body = _body(b"x" * 1000)
    ClosesOnUnreadBody(_answer(0))({"wsgi.input": body}, _GunicornResponse().start_response)
    assert unread_bytes(body) == 1000  # an early answer does not wait for a slow client's body


def test_out_of_descriptors_pauses_accepting_instead_of_killing_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """EMFILE from accept used to propagate and end the worker; now accepting stops for a moment."""
    worker = object.__new__(MaasWorker)  # the accept path only needs these attributes
    worker.sockets, worker.nr_conns, worker._accepting = [], 0, True

    class Exhausted:
        def accept(self) -> None:
            raise OSError(errno.EMFILE, "Too many open files")

    clock = [100.0]
    monkeypatch.setattr("maas_server.serve.worker.time.monotonic", lambda: clock[0])
    worker.accept(Exhausted())
    assert worker._accepting is False
    worker.set_accept_enabled(True)  # gthread's loop asks again at once: the pause holds
    assert worker._accepting is False
    clock[0] += ACCEPT_PAUSE_S
    worker.set_accept_enabled(True)
    assert worker._accepting is True


def test_serve_raises_the_soft_open_files_limit_and_caps_connections_below_it() -> None:
    script = ("import resource; resource.setrlimit(resource.RLIMIT_NOFILE, (256, 4096))\n"
              "from maas_server.serve.worker import raise_open_files_limit\n"
              "print(raise_open_files_limit(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "OpenFiles(before=256, after=4096, hard=4096) 4096"
    assert connection_limit(2128, 4096) == 2128 and connection_limit(2128, 1024) == 1024 - DESCRIPTOR_RESERVE
