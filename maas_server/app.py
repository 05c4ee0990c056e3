"""The app factory: settings, model registry, blueprints and error handlers. Nothing at import.

Under gunicorn, ``create_app`` runs in each worker after the fork, so every worker owns its
models and runner threads (CUDA and threads do not survive a fork).
"""

from __future__ import annotations

import logging
import os
import time
import uuid

from flask import Flask, Response, current_app, g, request

from .accounts import AccountSettings
from .api import accounting, classify, detect, embeddings, entities, generation, models, openapi
from .api._common import ServerState
from .api.admission import Admission
from .config import ServerConfig, load_config
from .errors import APIError, register_error_handlers
from .ops.logs import configure_json_logging
from .ops.metrics import timed_loader
from .runtime.registry import Loader, ModelRegistry, load_configured_model

_REQUEST_ID = "X-Request-ID"


def create_app(config: ServerConfig | None = None, *, loader: Loader = load_configured_model,
               load_models: bool = True, accounts: AccountSettings | None = None) -> Flask:
    """Build the Flask app. `loader` is a seam for tests (fake models); models load in the background.

    `accounts` says where keys, limits and usage live (default: from MAAS_* variables).
    """
    config = config or load_config()
    app = Flask("maas_server")
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    registry = ModelRegistry(config, timed_loader(loader))
    app.extensions["maas"] = ServerState(config, registry, started=int(time.time()))
    for blueprint in (generation.bp, embeddings.bp, classify.bp, detect.bp, entities.bp, models.bp, openapi.bp):
        app.register_blueprint(blueprint)
    register_error_handlers(app)
    app.before_request(_assign_request_id)
    app.before_request(_refuse_new_work_while_draining)
    app.after_request(_echo_request_id)
    accounting.init_app(app, accounts)  # keys, rate limits, usage, /metrics, the request log
    app.wsgi_app = Admission(app.wsgi_app, config.max_concurrent_requests)  # type: ignore[method-assign]
    if load_models:
        registry.load_in_background()
    return app


def _assign_request_id() -> None:
    incoming = request.headers.get(_REQUEST_ID, "")
    # Echo a client's id only when it is a sane token: it ends up in logs and headers.
    g.request_id = incoming if 0 < len(incoming) <= 128 and incoming.isprintable() else uuid.uuid4().hex


def _refuse_new_work_while_draining() -> None:
    # Requests already admitted finish; a new one goes elsewhere (the load balancer has seen /ready 503).
    if request.path.startswith("/v1/") and current_app.extensions["maas"].draining.is_set():
        raise APIError("the server is shutting down; retry on another instance", status=503,
                       code="shutting_down", headers={"Retry-After": "1"})


def begin_drain(app: Flask) -> None:
    """Stop admitting work: /ready says 503 and new /v1 requests are refused; running ones finish."""
    app.extensions["maas"].draining.set()


def _echo_request_id(response: Response) -> Response:
    response.headers[_REQUEST_ID] = getattr(g, "request_id", None) or uuid.uuid4().hex
    return response


def configure_logging(level: int = logging.INFO) -> None:
    """One JSON object per line on stderr (MAAS_LOG_FORMAT=text: plain lines)."""
    if os.environ.get("MAAS_LOG_FORMAT", "json") == "json":
        configure_json_logging(level)
        return
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
