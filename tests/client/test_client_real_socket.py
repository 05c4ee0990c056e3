"""Streaming over a real socket: a tiny chunked HTTP server on an ephemeral port.

Mocks cannot show that events reach the caller while the server is still sending, or that
closing a stream closes the connection; these tests can. They synchronise on Events, not
sleeps.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import maas_client as maas
from tests.client.client_support import completion_chunk

Handler = Callable[[BaseHTTPRequestHandler], None]


def event(payload: object) -> bytes:
    return f"data: {json.dumps(payload) if not isinstance(payload, str) else payload}\n\n".encode()


class ChunkedWriter:
    def __init__(self, handler: BaseHTTPRequestHandler) -> None:
        self.handler = handler
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()

    def write(self, data: bytes) -> None:
        self.handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.handler.wfile.flush()

    def end(self) -> None:
        self.handler.wfile.write(b"0\r\n\r\n")
        self.handler.wfile.flush()


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], str]]:
    servers: list[ThreadingHTTPServer] = []

    def start(respond: Handler) -> str:
        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                respond(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), RequestHandler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_events_arrive_while_the_server_is_still_sending(serve: Callable[[Handler], str]) -> None:
    client_has_first = threading.Event()
    server_saw_it: list[bool] = []

    def respond(handler: BaseHTTPRequestHandler) -> None:
        out = ChunkedWriter(handler)
        out.write(event(completion_chunk("first")))
        server_saw_it.append(client_has_first.wait(timeout=5))
        out.write(event(completion_chunk("second")) + event("[DONE]"))
        out.end()

    with maas.Client(base_url=serve(respond), max_retries=0) as client:
        texts = []
        for chunk in client.generate("x", model="m", stream=True):
            texts.append(chunk.text)
            client_has_first.set()
    assert texts == ["first", "second"]
    assert server_saw_it == [True]  # the client had "first" before "second" was sent


def test_closing_a_stream_closes_the_connection(serve: Callable[[Handler], str]) -> None:
    client_closed = threading.Event()
    server_done = threading.Event()
    writes_after_close: list[int] = []

    def respond(handler: BaseHTTPRequestHandler) -> None:
        out = ChunkedWriter(handler)
        out.write(event(completion_chunk("first")))
        client_closed.wait(timeout=5)
        writes = 0
        try:
            while writes < 100_000:  # a generator that would go on and on
                out.write(event(completion_chunk("more")))
                writes += 1
        except OSError:  # broken pipe / reset: the client hung up
            writes_after_close.append(writes)
        server_done.set()

    with maas.Client(base_url=serve(respond), max_retries=0) as client:
        stream = client.generate("x", model="m", stream=True)
        assert next(stream).text == "first"
        stream.close()
        client_closed.set()
        assert server_done.wait(timeout=10)
    assert len(writes_after_close) == 1  # the server's writes failed: generation can stop


def test_a_silent_server_times_out(serve: Callable[[Handler], str]) -> None:
    release = threading.Event()

    def respond(handler: BaseHTTPRequestHandler) -> None:
        out = ChunkedWriter(handler)
        out.write(event(completion_chunk("first")))
        release.wait(timeout=5)

    try:
        with maas.Client(base_url=serve(respond), max_retries=0, timeout=(2, 0.2)) as client:
            stream = client.generate("x", model="m", stream=True)
            assert next(stream).text == "first"
            with pytest.raises(maas.APITimeoutError):
                next(stream)
    finally:
        release.set()
