"""The gunicorn worker `maas-server serve` runs: gthread, with what a shared service needs on top.

gunicorn's gthread worker gives each connection a thread from the moment its first byte arrives,
and then reads the request and writes the response with blocking calls that never time out. So a
client sending one byte every few seconds (slowloris), a slow body, or a stream nobody reads
each hold a thread for as long as they like, and 64 of them took the server offline. This worker
keeps gthread (its threads suit our runner hand-off) and adds:

- deadlines on the client's socket: the request line and headers must arrive within
  ``header_timeout`` of the first byte, and the body within ``body_timeout`` with no gap longer
  than ``idle_timeout``; a client past them gets 408 and is closed. A response write that makes no
  progress for ``write_timeout`` (the client stopped reading) ends the response as if the client
  had hung up, so a stream nobody reads frees its thread and its row in the batch;
- gunicorn's graceful close, which runs on the accepting thread and waits up to 2 s for each
  client to close its side, only drains what has arrived: clients that never close cannot stall
  accepting;
- on SIGTERM it closes its listening sockets at once, so during the drain new connections are
  refused by the kernel instead of queueing unanswered until the worker exits;
- gunicorn's own errors (malformed request line, 414, 431, 408) answer with our JSON envelope,
  and never log the request line (it may carry credentials in a query string);
- a response sent before its request body was read (an early 400, 404 or 413) says
  ``Connection: close`` unless the rest of the body drains at once: gunicorn drains at most 64 KB
  and then closes a connection it had announced as keep-alive, and a pooled client's next request
  on it failed (``RemoteDisconnected``);
- out of file descriptors (``EMFILE`` when a flood of connections meets a soft limit of 1024), it
  stops accepting for ``ACCEPT_PAUSE_S`` instead of dying: gthread re-raised the error, the worker
  exited, and its successor could not open its model files while the flood lasted. ``serve``
  raises the soft limit to the hard one and caps connections below it (``connection_limit``).

TLS connections are wrapped by gunicorn after accept; they get a plain per-call socket timeout
(``idle_timeout``, inherited from this socket) instead of the header deadline. A buffering proxy
in front (nginx, envoy) is the right place for TLS and slow clients in production; see
docs/server.md.
"""

from __future__ import annotations

import errno
import json
import logging
import resource
import socket
import time
from dataclasses import dataclass
from typing import Any

from gunicorn.http import errors as http_errors
from gunicorn.workers.gthread import TConn, ThreadWorker
from werkzeug.exceptions import RequestTimeout

from ..ops.steptimes import timed

log = logging.getLogger("maas.server")


@dataclass(frozen=True)
class SocketTimeouts:
    """How long a client may take; see the module docstring. Seconds."""

    header_timeout: float = 10.0
    body_timeout: float = 60.0
    idle_timeout: float = 10.0
    write_timeout: float = 30.0


class SlowClient(RequestTimeout):
    """The client did not send its request within the deadlines (an HTTP 408)."""

    description = "the request was not received in time; send the whole request promptly"


class DeadlineSocket(socket.socket):
    """A client socket whose reads end at a deadline and whose writes give up on a stalled reader.

    gthread calls ``setblocking(True)`` when a thread takes up a request; that starts the header
    deadline. ``begin_response_phase`` (once the headers are parsed) switches to the body deadline.
    Anyone else who sets a timeout explicitly (gunicorn's graceful close) gets plain socket
    behaviour until the next request starts.
    """

    timeouts: SocketTimeouts
    _deadline: float | None  # None: not managed by us (non-blocking, or an explicit timeout)
    _closing: bool

    @classmethod
    def adopt(cls, sock: socket.socket, timeouts: SocketTimeouts) -> DeadlineSocket:
        adopted = cls(sock.family, sock.type, sock.proto, fileno=sock.detach())
        adopted.timeouts = timeouts
        adopted._deadline = None
        adopted._closing = False
        return adopted

    def setblocking(self, flag: bool) -> None:
        if not flag:
            self._deadline = None
            super().setblocking(False)
            return
        self._deadline = time.monotonic() + self.timeouts.header_timeout
        # Blocking, but never forever: a TLS socket gunicorn wraps around this one inherits the
        # timeout, so even there one silent read cannot hold a thread past `idle_timeout`.
        super().settimeout(self.timeouts.idle_timeout)

    def settimeout(self, value: float | None) -> None:
        self._deadline = None
        super().settimeout(0.0 if self._closing else value)

    def shutdown(self, how: int) -> None:
        # gunicorn closes "gracefully" on its main thread: after this it waits up to 2 s for the
        # client to close too. A client that never does would stall accepting for everyone, so
        # the linger only drains what has already arrived (timeouts become non-blocking).
        self._closing = True
        super().shutdown(how)

    def begin_response_phase(self) -> None:
        self._deadline = time.monotonic() + self.timeouts.body_timeout

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if self._deadline is None or flags & socket.MSG_DONTWAIT:
            # A non-blocking read (the app peeking whether its client left) waits for nothing, so no
            # deadline applies: past the body deadline it must still see a hang-up, not raise a 408.
            return super().recv(bufsize, flags)
        self._arm_read(self._deadline)
        try:
            return super().recv(bufsize, flags)
        except TimeoutError:
            raise SlowClient() from None

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        if self._deadline is None:
            return super().recv_into(buffer, nbytes, flags)
        self._arm_read(self._deadline)
        try:
            return super().recv_into(buffer, nbytes, flags)
        except TimeoutError:
            raise SlowClient() from None

    def sendall(self, data: Any, flags: int = 0) -> None:
        if self._deadline is None:
            super().sendall(data, flags)
            return
        super().settimeout(self.timeouts.write_timeout)
        try:
            with timed("wire.write"):
                super().sendall(data, flags)
        except TimeoutError:
            # The client stopped reading: treat it as gone (gunicorn closes quietly on EPIPE, and a
            # streaming response's generator is closed, which cancels its generation).
            raise BrokenPipeError(errno.EPIPE, "the client stopped reading the response") from None

    def _arm_read(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise SlowClient()
        super().settimeout(min(remaining, self.timeouts.idle_timeout))


OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
ACCEPT_PAUSE_S = 0.5
# Descriptors a worker keeps for everything but client connections: model and store files,
# metrics, logs, pipes. An idle worker with the default models holds about 25.
DESCRIPTOR_RESERVE = 256
OPEN_FILES_TARGET = 65_536  # the soft limit `serve` asks for when the hard limit is unlimited


@dataclass(frozen=True)
class OpenFiles:
    """The process's open-file limit before and after `raise_open_files_limit`."""

    before: int
    after: int
    hard: int


def raise_open_files_limit() -> OpenFiles:
    """Raise the soft RLIMIT_NOFILE to the hard one (which needs no privilege); workers inherit it.

    A systemd service starts with a soft limit of 1024 and a far higher hard one; connections are
    file descriptors, so 1024 let a flood of slow clients starve the worker of them.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = OPEN_FILES_TARGET if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            target = soft  # a container may forbid it; the connection cap then follows the soft limit
    else:
        target = soft
    return OpenFiles(before=soft, after=target, hard=hard)


def connection_limit(wanted: int, open_files: int) -> int:
    """Connections a worker may hold: `wanted`, less when the open-file limit cannot hold them and
    the worker's own files (DESCRIPTOR_RESERVE) too. Beyond it, clients wait in the backlog."""
    return max(1, min(wanted, open_files - DESCRIPTOR_RESERVE))


# gunicorn's parse errors, as the status and code our envelope gives them.
_PARSE_ERRORS: tuple[tuple[type[BaseException], int, str], ...] = (
    (SlowClient, 408, "request_timeout"),
    (http_errors.LimitRequestLine, 414, "request_line_too_long"),
    (http_errors.LimitRequestHeaders, 431, "request_headers_too_large"),
    (http_errors.UnsupportedTransferCoding, 501, "unsupported_transfer_coding"),
    (http_errors.ExpectationFailed, 417, "expectation_failed"),
)
_REASONS = {400: "Bad Request", 408: "Request Timeout", 414: "URI Too Long", 417: "Expectation Failed",
            431: "Request Header Fields Too Large", 500: "Internal Server Error", 501: "Not Implemented"}


def error_for(exc: BaseException) -> tuple[int, str, str]:
    """(status, code, message) for an error gunicorn met before the app ran."""
    for kind, status, code in _PARSE_ERRORS:
        if isinstance(exc, kind):
            return status, code, _message(status)
    if isinstance(exc, (http_errors.ParseException, ValueError)):
        return 400, "invalid_http_request", "the HTTP request is malformed"
    return 500, "internal_error", "internal server error; the server log has the details"


def _message(status: int) -> str:
    return {
        408: SlowClient.description,
        414: "the request line (URL) is too long",
        431: "the request headers are too large",
        501: "unsupported Transfer-Encoding; send Content-Length or chunked",
        417: "unsupported Expect header",
    }[status]


def json_error_bytes(status: int, code: str, message: str) -> bytes:
    """A whole HTTP/1.1 response carrying the JSON error envelope, closing the connection."""
    from ..errors import error_body  # the one envelope; errors imports models/runtime code, not torch

    body = json.dumps(error_body(status, message, None, code)).encode()
    head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


DRAIN_LIMIT = 64 * 1024  # what gunicorn drains of an unread body before it gives up on the connection


class ClosesOnUnreadBody:
    """WSGI wrapper: a response that leaves more of its request body unread than gunicorn drains closes.

    The app has returned its response, but gunicorn sends nothing until it iterates it, so the
    connection's fate can still be told in the headers. Up to DRAIN_LIMIT left unread, gunicorn
    drains it after the response and keeps the connection; more (an oversized upload refused
    unread), or an unknown amount (a chunked body not read to its end), makes gunicorn answer
    ``Connection: close``, so the client opens a new connection instead of reusing one the server
    is about to drop. Nothing is read here: an early answer (503 overloaded, 401) must not wait
    for a slow client's body.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        result = self.app(environ, start_response)
        left = unread_bytes(environ.get("wsgi.input"))
        if left is None or left > DRAIN_LIMIT:
            force_close = getattr(getattr(start_response, "__self__", None), "force_close", None)
            if force_close is not None:  # gunicorn's Response; other servers decide for themselves
                force_close()
        return result


def unread_bytes(body: Any) -> int | None:
    """How much of a gunicorn request body is still on the socket; None when that cannot be known."""
    if body is None:
        return 0
    reader = getattr(body, "reader", None)
    length = getattr(reader, "length", None)
    if isinstance(length, int):  # Content-Length: what is left of it
        return length
    if getattr(reader, "parser", True) is None or getattr(reader, "finished", False):
        return 0  # a chunked (or read-to-EOF) body read to its end
    return None


class MaasWorker(ThreadWorker):  # type: ignore[misc]  # gunicorn ships no type hints
    """gthread with socket deadlines, an immediate stop of listening on SIGTERM, and JSON errors."""

    timeouts = SocketTimeouts()  # replaced per worker by `serve` (post_fork)

    def load_wsgi(self) -> None:
        super().load_wsgi()
        self.wsgi: Any = ClosesOnUnreadBody(self.wsgi)

    _accept_paused_until = 0.0

    def accept(self, listener: Any) -> None:
        try:
            client_sock, client_addr = listener.accept()
        except OSError as exc:
            if exc.errno in OUT_OF_DESCRIPTORS:
                self._pause_accepting(exc)
            elif exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = TConn(self.cfg, DeadlineSocket.adopt(client_sock, self.timeouts), client_addr,
                     listener.getsockname())
        self.enqueue_req(conn)

    def _pause_accepting(self, exc: OSError) -> None:
        """Leave new connections in the kernel's backlog until descriptors are freed, and stay alive."""
        log.warning("out of file descriptors (%s, %d connections open): not accepting for %.1fs",
                    errno.errorcode.get(exc.errno or 0, exc.errno), self.nr_conns, ACCEPT_PAUSE_S)
        self._accept_paused_until = time.monotonic() + ACCEPT_PAUSE_S
        self.set_accept_enabled(False)

    def set_accept_enabled(self, enabled: bool) -> None:
        # gthread's loop turns accepting back on whenever it has room for connections; a pause holds.
        if enabled and time.monotonic() < self._accept_paused_until:
            return
        super().set_accept_enabled(enabled)

    def handle_request(self, req: Any, conn: Any) -> Any:
        if isinstance(conn.sock, DeadlineSocket):
            conn.sock.begin_response_phase()
        else:  # TLS: gunicorn wrapped our socket; a per-call timeout is what it can have
            conn.sock.settimeout(self.timeouts.idle_timeout)
        return super().handle_request(req, conn)

    def handle_exit(self, sig: int, frame: Any) -> None:
        if self.alive:
            # Stop listening now: the master closes its copy of the listening sockets too, so new
            # connections are refused at once rather than left in the backlog until we exit.
            self.method_queue.defer(self._stop_listening)
        super().handle_exit(sig, frame)

    def _stop_listening(self) -> None:
        self.set_accept_enabled(False)
        for listener in self.sockets:
            try:
                listener.sock.close()
            except OSError:
                pass

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        status, code, message = error_for(exc)
        if status >= 500:
            log.error("error before the app could answer: %s", type(exc).__name__, exc_info=exc)
        else:  # the request line may carry credentials: name the error, never the line
            log.info("refused a malformed or slow request: %d %s", status, code)
        try:
            client.settimeout(1.0)  # a client that does not read its error is not waited for
            client.sendall(json_error_bytes(status, code, message))
        except OSError:
            pass
