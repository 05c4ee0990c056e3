"""Shedding a flood early: a model call that every model able to serve it would refuse now is answered
503 ``overloaded`` before Flask, its body and its view.

Under a burst the time of a refusal is mostly waiting: the request's thread queues for the GIL among
hundreds of others while it parses the body, authenticates, validates and renders the error through
Flask. The runners keep what their wait estimate needs in counters (runtime/runner.py,
``Runner.refusal``), so the WSGI layer can ask them before anything else, from the path and the
headers alone: when every runner that could take the route's work would refuse a call with the
request's deadline (``X-Request-Timeout``, else the model's), the request is refused there, with
``Retry-After``. Whatever any model could still serve goes on to its view, which decides as before;
so does a call to a model that has not measured its rate yet.
The routes are the POST endpoints whose records (api/endpoints.py) serve model methods; every lane
of a model that could serve one counts, so a call that may choose another lane by its body (explain:
true) is refused early only when that lane would refuse it too.

The refusal is counted as any request is (a usage row under the caller's key, metrics, one log line:
api/accounting.py). Calls the early path cannot judge go on to Flask, which answers them as usual:
a key that would not pass (401), a bad ``X-Request-Timeout`` (400), a query string (keys in URLs are
refused there), a call from a web page (``Origin`` or ``Sec-Fetch-*``: its Host and origin checks,
api/browsers.py), a model still loading, and routes whose model is named in the path.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask

from ..errors import error_body, overloaded
from ..models.contract import Method
from ..ops import metrics
from ..runtime.registry import ModelEntry, ModelRunner
from ..runtime.runner import Overloaded
from . import accounting
from ._common import MIN_REQUEST_TIMEOUT_S
from .admission import request_id

_FROM_WEB_PAGES = ("HTTP_ORIGIN", "HTTP_SEC_FETCH_SITE", "HTTP_SEC_FETCH_MODE")


class EarlyRefusal:
    """Called by Admission with each /v1 request: the 503 response's body when it is refused here, else None."""

    def __init__(self, app: Flask) -> None:
        self.app = app  # read at each call: the registry's runners appear as models load
        self._serves: dict[str, tuple[Method[Any, Any], ...]] | None = None  # path -> methods, from the records

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes] | None:
        started = time.perf_counter()
        state = self.app.extensions["maas"]
        if self._serves is None:
            self._serves = {e.path: e.serves for e in state.endpoints.values()
                            if e.verb == "post" and e.serves and not e.takes_model_in_path}
        methods = self._serves.get(environ.get("PATH_INFO", ""))
        if methods is None or environ.get("REQUEST_METHOD") != "POST" or environ.get("QUERY_STRING") \
                or any(header in environ for header in _FROM_WEB_PAGES):
            return None
        try:
            deadline = _deadline(environ.get("HTTP_X_REQUEST_TIMEOUT"), state.config.max_request_timeout_s)
        except ValueError:
            return None  # the view says what is wrong with it (400)
        candidates = [entry for entry in state.registry.entries() if any(map(entry.offers, methods))]
        refusal = _every_runner_refuses(candidates, deadline)
        if refusal is None:
            return None
        model = candidates[0].config.name if len(candidates) == 1 else None
        rid = request_id(environ.get("HTTP_X_REQUEST_ID", ""))
        if not accounting.count_refused_early(self.app, environ, model, started, rid):
            return None
        metrics.SHED.labels("estimate").inc()
        error = overloaded(refusal)
        body = json.dumps(error_body(error.status, error.message, None, error.code)).encode()
        # The body is left unread; gunicorn drains it (within a deadline) before reusing the connection.
        start_response("503 SERVICE UNAVAILABLE", [("Content-Type", "application/json"),
                                                   ("Content-Length", str(len(body))),
                                                   *error.headers.items(), ("X-Request-ID", rid)])
        return [body]


def _deadline(header: str | None, longest: float) -> float | None:
    """The request's X-Request-Timeout in seconds, None without one (the model's own); ValueError when invalid."""
    if header is None:
        return None
    seconds = float(header)
    if not MIN_REQUEST_TIMEOUT_S <= seconds <= longest:  # also false for NaN
        raise ValueError(header)
    return seconds


def _every_runner_refuses(entries: list[ModelEntry], deadline: float | None) -> Overloaded | None:
    """The refusal that comes back soonest when every runner (every lane) of these models would refuse the
    call now; None when any could take it, or a model has not loaded."""
    if any(entry.runner is None for entry in entries):
        return None
    runners: list[ModelRunner] = [runner for entry in entries for runner in entry.lanes.values()]
    refusals = [runner.refusal(deadline, measured_only=True) for runner in runners]
    if not refusals or any(refusal is None for refusal in refusals):
        return None
    return min((r for r in refusals if r is not None), key=lambda r: r.retry_after)
