"""GET /v1/models (OpenAI's list shape plus task, endpoints, device), /health and /ready."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ..errors import APIError
from ..runtime.registry import ModelEntry
from ._common import may_use, state
from .endpoints import Endpoint, Family
from .forms import MODEL_IN_PATH
from .wire import ResponseBody, dump


class ModelInfo(ResponseBody):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "maas"
    task: str
    endpoints: list[str]
    device: str | None
    dtype: str | None
    runtime: str | None = Field(
        None, description="what runs the forward pass, where the config chooses it: torch, onnx or onnx-int8 "
                          "(the runtime in use: torch when an ONNX graph missed its quality gate at load)")
    context_length: int | None = Field(None, description="tokens a request may use (prompt plus output)")
    max_characters: int | None = Field(
        None, description="characters one input may have, for models limited in characters (spaCy pipelines)")
    dimensions: int | None = Field(None, description="embedding size (embedding models)")
    labels: list[str] | None = Field(
        None, description="a classifier's own labels (GET /v1/models/{id} only: ImageNet has 1000)")
    languages: list[str] | None = Field(None, description="speech: the languages it transcribes (ISO 639-1)")
    translates: bool | None = Field(None, description="speech: whether it serves /v1/audio/translations")
    backend: Literal["local", "ray"] = Field(
        "local", description="local: in the server's own processes; ray: in Ray Serve replicas (docs/scaling.md)")
    replicas: ReplicaCount | None = Field(None, description="ray: its replicas running now, and its deployment's "
                                                            "target (autoscaling moves it)")
    ready: bool


class ReplicaCount(ResponseBody):
    running: int
    target: int


class ModelList(ResponseBody):
    object: Literal["list"] = "list"
    data: list[ModelInfo]


class Health(ResponseBody):
    """GET /health: the process is alive."""

    status: Literal["ok"] = "ok"


class Readiness(ResponseBody):
    """GET /ready: 200 with status `ready` once every model is loaded, else 503; each model's state.

    `unavailable`: something the models need besides themselves (the account store) cannot be used;
    `problems` says what.
    """

    status: Literal["ready", "not_ready", "draining", "unavailable"]
    # unavailable: a model on Ray with no replica running now (or its cluster unreachable)
    models: dict[str, Literal["ready", "loading", "failed", "unavailable"]]
    problems: list[str] = []  # noqa: RUF012 - pydantic copies a default per instance


family = Family("models", __name__)


@family.get("/v1/models", "List the served models", response=ModelList)
def list_models() -> Any:
    """The models the caller's key may use (every one without a key, or for an unscoped key)."""
    return dump(ModelList(data=[_info(e, with_labels=False) for e in state().registry.entries() if may_use(e)]))


@family.get("/v1/models/{model}", "One served model", response=ModelInfo, parameters=(MODEL_IN_PATH,),
            more_errors=(404,))
def get_model(model: str) -> Any:
    entry = state().registry.get(model)
    if entry is None or not may_use(entry):  # a scoped key learns nothing of the models it may not use
        raise APIError(f"model {model!r} does not exist; GET /v1/models lists them", status=404, param="model",
                       code="model_not_found")
    return dump(_info(entry, with_labels=True))


@family.get("/health", "Liveness: 200 while the process is alive", response=Health, access="public",
            polled=True)
def health() -> Any:
    return dump(Health())


@family.get("/ready", "Readiness: 200 once every model is loaded and warmed, 503 before and while draining",
            response=Readiness, access="public", polled=True)
def ready() -> Any:
    registry = state().registry
    models = {e.config.name: _model_state(e) for e in registry.entries()}
    if state().draining.is_set():
        return dump(Readiness(status="draining", models=models)), 503
    problems = [problem for check in state().readiness_checks if (problem := check()) is not None]
    if problems:  # e.g. the account store: a load balancer should send the traffic elsewhere
        return dump(Readiness(status="unavailable", models=models, problems=problems)), 503, {"Retry-After": "5"}
    if registry.ready:
        return dump(Readiness(status="ready", models=models))
    return dump(Readiness(status="not_ready", models=models)), 503, {"Retry-After": "5"}


def _model_state(entry: ModelEntry) -> Literal["ready", "loading", "failed", "unavailable"]:
    if entry.ready:
        return "ready"
    if entry.runner is not None:
        return "unavailable"  # loaded, but it cannot serve now: a model on Ray with no running replica
    return "failed" if entry.error else "loading"


def _info(entry: ModelEntry, *, with_labels: bool) -> ModelInfo:
    described = entry.description
    replicas = entry.replicas()
    return ModelInfo(
        id=entry.config.name,
        created=state().started,
        task=entry.config.task,
        endpoints=[e.path for e in state().endpoints.values() if _serves(e, entry)],
        device=described.device if described else None,
        dtype=described.dtype if described else None,
        runtime=described.runtime if described else None,
        context_length=described.context_length if described else None,
        max_characters=described.max_characters if described else None,
        dimensions=described.dimensions if described else None,
        labels=list(described.labels) if with_labels and described and described.labels else None,
        languages=list(described.languages) if described and described.languages else None,
        translates=described.translates if described else None,
        backend=entry.config.backend,
        replicas=ReplicaCount(running=replicas.running, target=replicas.target) if replicas else None,
        ready=entry.ready,
    )


def _serves(endpoint: Endpoint, entry: ModelEntry) -> bool:
    """Whether `entry` can serve an endpoint that takes the model in its body (the /models/NAME routes are
    Hugging Face's shapes of the same work, not listed)."""
    if endpoint.takes_model_in_path or not any(map(entry.offers, endpoint.serves)):
        return False
    described = entry.description
    return endpoint.offered is None or described is None or endpoint.offered(described)
