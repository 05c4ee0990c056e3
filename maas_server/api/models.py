"""GET /v1/models (OpenAI's list shape plus task, endpoints, device), /health and /ready."""

from __future__ import annotations

from typing import Any, Literal

from flask import Blueprint

from ..errors import APIError
from ..runtime.registry import ModelEntry
from . import schemas as s
from ._common import ENDPOINT_METHODS, may_use, state
from .speech import TRANSLATIONS

bp = Blueprint("models", __name__)


@bp.get("/v1/models")
def list_models() -> Any:
    """The models the caller's key may use (every one without a key, or for an unscoped key)."""
    return s.dump(s.ModelList(data=[_info(e, with_labels=False) for e in state().registry.entries() if may_use(e)]))


@bp.get("/v1/models/<path:name>")
def get_model(name: str) -> Any:
    entry = state().registry.get(name)
    if entry is None or not may_use(entry):  # a scoped key learns nothing of the models it may not use
        raise APIError(f"model {name!r} does not exist; GET /v1/models lists them", status=404, param="model",
                       code="model_not_found")
    return s.dump(_info(entry, with_labels=True))


@bp.get("/health")
def health() -> Any:
    return s.dump(s.Health())


@bp.get("/ready")
def ready() -> Any:
    registry = state().registry
    models = {e.config.name: _model_state(e) for e in registry.entries()}
    if state().draining.is_set():
        return s.dump(s.Readiness(status="draining", models=models)), 503
    problems = [problem for check in state().readiness_checks if (problem := check()) is not None]
    if problems:  # e.g. the account store: a load balancer should send the traffic elsewhere
        return s.dump(s.Readiness(status="unavailable", models=models, problems=problems)), 503, {"Retry-After": "5"}
    if registry.ready:
        return s.dump(s.Readiness(status="ready", models=models))
    return s.dump(s.Readiness(status="not_ready", models=models)), 503, {"Retry-After": "5"}


def _model_state(entry: ModelEntry) -> Literal["ready", "loading", "failed", "unavailable"]:
    if entry.ready:
        return "ready"
    if entry.runner is not None:
        return "unavailable"  # loaded, but it cannot serve now: a model on Ray with no running replica
    return "failed" if entry.error else "loading"


def _info(entry: ModelEntry, *, with_labels: bool) -> s.ModelInfo:
    described = entry.description
    replicas = entry.replicas()
    return s.ModelInfo(
        id=entry.config.name,
        created=state().started,
        task=entry.config.task,
        endpoints=[path for path, methods in ENDPOINT_METHODS.items() if any(map(entry.offers, methods))
                   and not (path == TRANSLATIONS and described is not None and described.translates is False)],
        device=described.device if described else None,
        dtype=described.dtype if described else None,
        context_length=described.context_length if described else None,
        max_characters=described.max_characters if described else None,
        dimensions=described.dimensions if described else None,
        labels=list(described.labels) if with_labels and described and described.labels else None,
        languages=list(described.languages) if described and described.languages else None,
        translates=described.translates if described else None,
        backend=entry.config.backend,
        replicas=s.ReplicaCount(running=replicas.running, target=replicas.target) if replicas else None,
        ready=entry.ready,
    )
