"""The app factory: settings, model registry, blueprints and error handlers. Nothing at import.

Under gunicorn, ``create_app`` runs in each worker after the fork, so every worker owns its
models and runner threads (CUDA and threads do not survive a fork).
"""

from __future__ import annotations

import logging
import time
import uuid

from flask import Flask, Response, g, request

from . import console
from .api import accounting, admin, browsers, redaction
from .api._common import SERVED_BY_HEADER, ServerState, state
from .api.admission import Admission, is_api_path, request_id
from .api.endpoints import api_prefixes
from .api.memory import MB, MemoryBudget, default_budget_bytes
from .api.memory import init_app as init_memory_budget
from .api.routes import FAMILIES
from .api.shedding import EarlyRefusal
from .errors import APIError, register_error_handlers
from .ops.logs import configure_json_logging
from .ops.metrics import timed_loader
from .runtime.assembly import load_configured_model
from .runtime.registry import Loader, ModelRegistry
from .settings import Settings, load_settings

_REQUEST_ID = "X-Request-ID"


def create_app(settings: Settings | None = None, *, loader: Loader = load_configured_model,
               load_models: bool = True) -> Flask:
    """Build the Flask app from the server's settings (read by `load_settings` when not given).

    `loader` is a seam for tests (fake models); models load in the background.
    """
    settings = settings or load_settings()
    app = Flask("maas_server")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    registry = ModelRegistry(settings, timed_loader(loader))
    memory = MemoryBudget(settings.memory_budget_mb * MB if settings.memory_budget_mb else default_budget_bytes())
    init_memory_budget(app)
    endpoints = {endpoint.view: endpoint for family in FAMILIES for endpoint in family.endpoints}
    app.extensions["maas"] = ServerState(settings, registry, started=int(time.time()), memory=memory,
                                         endpoints=endpoints, api_prefixes=api_prefixes(endpoints.values()))
    for family in FAMILIES:
        app.register_blueprint(family.blueprint)
    register_error_handlers(app)
    app.before_request(_assign_request_id)
    app.before_request(_refuse_new_work_while_draining)
    app.after_request(_echo_request_id)
    accounting.init_app(app, settings)  # keys, rate limits, usage, /metrics, the request log
    redaction.init_app(app)  # X-Maas-Redacted on the answers of keys with the redact_input policy
    app.before_request(admin.admins_only)  # after accounting's authentication
    browsers.init_app(app, settings)  # after accounting: a call served without a key must not come from a web page
    console.init_app(app, settings)  # the browser console at /console; its headers only on its own pages
    app.wsgi_app = Admission(app.wsgi_app, settings.max_concurrent_requests,  # type: ignore[method-assign]
                             app.extensions["maas"].api_prefixes, early=EarlyRefusal(app))
    if load_models:
        registry.load_in_background()
    return app


def _assign_request_id() -> None:
    g.request_id = request_id(request.headers.get(_REQUEST_ID, ""))


def _refuse_new_work_while_draining() -> None:
    # Requests already admitted finish; a new one goes elsewhere (the load balancer has seen /ready 503).
    if is_api_path(request.path, state().api_prefixes) and state().draining.is_set():
        raise APIError("the server is shutting down; retry on another instance", status=503,
                       code="shutting_down", headers={"Retry-After": "1"})


def begin_drain(app: Flask) -> None:
    """Stop admitting work: /ready says 503 and new /v1 requests are refused; running ones finish."""
    app.extensions["maas"].draining.set()


def _echo_request_id(response: Response) -> Response:
    response.headers[_REQUEST_ID] = getattr(g, "request_id", None) or uuid.uuid4().hex
    if served_by := getattr(g, "served_by", None):
        response.headers[SERVED_BY_HEADER] = served_by
    return response


def configure_logging(settings: Settings) -> None:
    """Log at the settings' level, one JSON object per line on stderr (log_format "text": plain lines)."""
    level = logging.getLevelNamesMapping()[settings.log_level.upper()]
    if settings.log_format == "json":
        configure_json_logging(level)
        return
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
