"""GET /v1/models (OpenAI's list shape plus task, endpoints, device), /health and /ready."""

from __future__ import annotations

from typing import Any, Literal

from ..errors import APIError
from ..runtime.registry import ModelEntry
from . import schemas as s
from ._common import may_use, state
from .endpoints import Endpoint, Family
from .forms import MODEL_IN_PATH

family = Family("models", __name__)


@family.get("/v1/models", "List the served models", response=s.ModelList)
def list_models() -> Any:
    """The models the caller's key may use (every one without a key, or for an unscoped key)."""
    return s.dump(s.ModelList(data=[_info(e, with_labels=False) for e in state().registry.entries() if may_use(e)]))


@family.get("/v1/models/{model}", "One served model", response=s.ModelInfo, parameters=(MODEL_IN_PATH,),
            more_errors=(404,))
def get_model(model: str) -> Any:
    entry = state().registry.get(model)
    if entry is None or not may_use(entry):  # a scoped key learns nothing of the models it may not use
        raise APIError(f"model {model!r} does not exist; GET /v1/models lists them", status=404, param="model",
                       code="model_not_found")
    return s.dump(_info(entry, with_labels=True))


@family.get("/health", "Liveness: 200 while the process is alive", response=s.Health, access="public",
            polled=True)
def health() -> Any:
    return s.dump(s.Health())


@family.get("/ready", "Readiness: 200 once every model is loaded and warmed, 503 before and while draining",
            response=s.Readiness, access="public", polled=True)
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
        endpoints=[e.path for e in state().endpoints.values() if _serves(e, entry)],
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


def _serves(endpoint: Endpoint, entry: ModelEntry) -> bool:
    """Whether `entry` can serve an endpoint that takes the model in its body (the /models/NAME routes are
    Hugging Face's shapes of the same work, not listed)."""
    if endpoint.takes_model_in_path or not any(map(entry.offers, endpoint.serves)):
        return False
    described = entry.description
    return endpoint.offered is None or described is None or endpoint.offered(described)
