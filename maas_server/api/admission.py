"""Admission: a bound on the /v1 requests a worker holds open at once, answered 503 past it.

Every admitted request holds its place until its response is closed, so an open stream counts
until its last byte is sent or its client leaves. Past ``max_concurrent_requests`` a request is
answered at once with 503 ``overloaded`` and ``Retry-After``, before its body is read: the bound
is the configuration's, not the thread pool's (``serve`` gives gunicorn more threads than this, so
``/health``, ``/ready`` and ``/metrics``, which are never counted, always find one). Before that,
``early`` may refuse the request outright, as cheaply (api/shedding.py: every model that could serve
it would refuse it now).

It wraps the WSGI app rather than hooking Flask's request cycle because a streamed response
outlives the request context: only the WSGI iterable's end (or ``close``) marks when it is done.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..errors import error_body
from ..ops import metrics

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
# Given a request, the body of the response it was refused with (the status and headers started), or None.
EarlyRefusal = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes] | None]

def is_api_path(path: str, prefixes: tuple[str, ...]) -> bool:
    """Whether `path` is under the API's prefixes (endpoints.api_prefixes: "/v1/", and "/models/", Hugging
    Face's inference address): admitted here, authenticated, metered and refused while draining, matched or not."""
    return (path + "/").startswith(prefixes)


def request_id(incoming: str) -> str:
    """The request's id: the client's X-Request-ID when it is a sane token (it ends up in logs and headers),
    else a new one."""
    return incoming if 0 < len(incoming) <= 128 and incoming.isprintable() else uuid.uuid4().hex


class Admission:
    """WSGI middleware: at most `limit` /v1 requests open at once; the rest get 503 immediately."""

    def __init__(self, app: WSGIApp, limit: int, prefixes: tuple[str, ...],
                 early: EarlyRefusal | None = None) -> None:
        self.app = app
        self.limit = limit
        self.prefixes = prefixes
        self.early = early
        self._slots = threading.BoundedSemaphore(limit)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not is_api_path(environ.get("PATH_INFO", ""), self.prefixes):
            return self.app(environ, start_response)
        if self.early is not None and (refused := self.early(environ, start_response)) is not None:
            return refused
        if not self._slots.acquire(blocking=False):
            metrics.SHED.labels("concurrency").inc()
            return self._refuse(start_response)
        metrics.OPEN_REQUESTS.inc()
        try:
            body = self.app(environ, start_response)
        except BaseException:
            self._release()
            raise
        return _HeldBody(body, self._release)

    def _release(self) -> None:
        metrics.OPEN_REQUESTS.dec()
        self._slots.release()

    def _refuse(self, start_response: Callable[..., Any]) -> Iterable[bytes]:
        message = (f"the server is at its limit of {self.limit} concurrent requests "
                   f"(max_concurrent_requests); retry shortly")
        body = json.dumps(error_body(503, message, None, "overloaded")).encode()
        # The body is left unread; gunicorn drains it (within a deadline) before reusing the connection.
        start_response("503 SERVICE UNAVAILABLE", [("Content-Type", "application/json"),
                                                   ("Content-Length", str(len(body))), ("Retry-After", "1")])
        return [body]



class _HeldBody:
    """The response body holding an admission place, released exactly once: when the body has been
    sent whole, or when the server closes it (early, or before reading it at all, which a generator
    could not notice: closing an unstarted generator runs none of its code).

    Releasing at the end of iteration too (not only on ``close``) keeps the count right under WSGI
    callers that read a body but never close it, as some test clients do.
    """

    def __init__(self, body: Iterable[bytes], release: Callable[[], None]) -> None:
        self._body, self._release = body, release
        self._released = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self._body
        self._release_once()

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._release_once()

    def _release_once(self) -> None:
        if not self._released:
            self._released = True
            self._release()
