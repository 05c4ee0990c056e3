"""The registry: which models are configured, loading them, and their runners.

Models load on a background thread started by the app factory (so after gunicorn forks, and
while /health already answers); /ready turns 200 once every model is loaded and warmed.

A model with ``backend = "ray"`` loads in Ray Serve replicas instead (runtime/ray_backend.py,
imported only when the config has one): its entry gets a runner that forwards to them, with the
same handles, and is ready while at least one replica runs. Callers cannot tell the two apart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from ..config import ModelConfig, ServerConfig
from ..models import TASKS
from ..models.contract import DEFAULT_LANE, Method, ModelDescription, TaskModel
from ..ops import metrics
from .assembly import build_runners, checked_description, load_configured_model
from .handles import EventStream, Handle, Replicas
from .runner import Overloaded

log = logging.getLogger("maas.runtime")

Loader = Callable[[ModelConfig, ServerConfig], TaskModel]
In = TypeVar("In")
Out = TypeVar("Out")

RAY_RETRY_S = 5.0  # a worker that could not reach its Ray application tries again this often


class ModelRunner(Protocol):
    """What callers use of a runner: a Runner in this process, or one that forwards to replicas elsewhere."""

    name: str

    @property
    def methods(self) -> Container[str]: ...  # the names of the methods it runs

    def submit_many(self, method: Method[In, Out], items: Iterable[In],
                    timeout: float | None = None) -> list[Handle[Out]]: ...

    def stream(self, method: Method[In, Out], items: list[In], timeout: float | None = None) -> EventStream[Out]: ...

    def available(self) -> bool: ...  # whether it can serve now

    # What a call with this deadline would be refused with now (None: nothing); see Runner.refusal.
    def refusal(self, timeout: float | None = None, *, measured_only: bool = False) -> Overloaded | None: ...

    def replicas(self) -> Replicas | None: ...  # None: the model runs in this process

    def stop(self, timeout: float | None = 5.0) -> None: ...


@dataclass
class ModelEntry:
    config: ModelConfig
    runner: ModelRunner | None = None  # the default lane's; set once the model has loaded
    lanes: dict[str, ModelRunner] = field(default_factory=dict)  # every lane's runner, the default one included
    description: ModelDescription | None = None  # what the model says about itself, once loaded
    error: str | None = None
    load_seconds: float | None = None

    @property
    def ready(self) -> bool:
        """Loaded, and able to serve now (a model on Ray: at least one replica running)."""
        return self.runner is not None and self.runner.available()

    @property
    def backend(self) -> str:
        return self.config.backend

    def replicas(self) -> Replicas | None:
        """Running and target replicas of a model on Ray (None for one in this process, or not yet attached)."""
        return self.runner.replicas() if self.runner is not None else None

    def offers(self, method: Method[Any, Any]) -> bool:
        """Whether this model's task offers `method` (known from the config, before the model loads)."""
        return TASKS[self.config.task].offers(method)

    def runner_for(self, method: Method[Any, Any]) -> ModelRunner:
        """The runner of the lane that runs `method` (the model must have loaded)."""
        for runner in self.lanes.values():
            if method.name in runner.methods:
                return runner
        raise ValueError(f"model {self.config.name!r} has no method {method.name!r}")


class ModelRegistry:
    def __init__(self, config: ServerConfig, loader: Loader = load_configured_model) -> None:
        self.config = config
        self._loader = loader
        self._entries = {m.name: ModelEntry(m) for m in config.models}
        self._aliases = {alias: m.name for m in config.models for alias in m.aliases}
        self._loaded = threading.Event()
        self._stopped = threading.Event()
        self._ray: Any = None  # the RayBackend, once a model with backend = "ray" is attached

    # -- loading

    def load_in_background(self) -> threading.Thread:
        thread = threading.Thread(target=self.load_all, name="model-loader", daemon=True)
        thread.start()
        return thread

    def load_all(self) -> None:
        # Ray deploys (or finds) its replicas while this process loads its own models.
        remote = [e for e in self._entries.values() if e.backend == "ray"]
        attaching = threading.Thread(target=self._attach_remote, args=(remote,), name="ray-attach", daemon=True)
        if remote:
            attaching.start()
        local = [e for e in self._entries.values() if e.backend == "local"]
        for position, entry in enumerate(local, start=1):
            self._load(entry, f"[{position}/{len(local)}]")
        if remote:
            attaching.join()
        self._loaded.set()

    def _attach_remote(self, entries: list[ModelEntry]) -> None:
        """Attach the ray-backed models (deploying their application if no one has), retrying until it works.

        Until then they answer 503 (not ready), and the local models serve as usual.
        """
        from .ray_backend import RayBackend

        while not self._stopped.is_set():
            try:
                self._ray = self._ray or RayBackend(self.config)
                for entry in entries:
                    if entry.runner is None:
                        self._attach(entry, self._ray)
                return
            except Exception as exc:  # noqa: BLE001 - reported on the models, /ready and the log; retried
                error = f"{type(exc).__name__}: {exc}"
                if any(entry.error != error for entry in entries if entry.runner is None):
                    log.error("cannot attach the Ray models (retrying every %gs): %s", RAY_RETRY_S, error)
                for entry in entries:
                    if entry.runner is None:
                        entry.error = error
            self._stopped.wait(RAY_RETRY_S)

    def _attach(self, entry: ModelEntry, backend: Any) -> None:
        started = time.perf_counter()
        runner, description = backend.attach(entry.config)
        entry.description = _checked_remote(entry.config, description)
        entry.lanes = {DEFAULT_LANE: runner}  # the replica keeps its lanes apart itself
        entry.runner, entry.error = runner, None
        entry.load_seconds = time.perf_counter() - started
        metrics.observe_model_load(entry.config.name, entry.load_seconds, backend="ray")
        log.info("attached %s on Ray (%s, %s) in %.1fs", entry.config.name, description.device, description.dtype,
                 entry.load_seconds)

    def _load(self, entry: ModelEntry, progress: str) -> None:
        cfg = entry.config
        log.info("%s loading %s (%s) from %s", progress, cfg.name, cfg.task, cfg.source)
        started = time.perf_counter()
        try:
            model = self._loader(cfg, self.config)
            description = checked_description(cfg, model)
        except Exception as exc:  # noqa: BLE001 - one broken model must not take the others down
            entry.error = f"{type(exc).__name__}: {exc}"
            log.error("%s failed to load %s: %s", progress, cfg.name, entry.error)
            return
        entry.load_seconds = time.perf_counter() - started
        entry.lanes = dict(build_runners(cfg, model, description.device))
        entry.description = description
        entry.runner = entry.lanes[DEFAULT_LANE]
        log.info("%s loaded %s on %s (%s) in %.1fs", progress, cfg.name, description.device, description.dtype,
                 entry.load_seconds)

    def wait_until_loaded(self, timeout: float | None = None) -> bool:
        return self._loaded.wait(timeout)

    def stop(self) -> None:
        self._stopped.set()
        for entry in self._entries.values():
            for runner in entry.lanes.values():
                runner.stop()
        if self._ray is not None:
            self._ray.stop()

    # -- lookup

    @property
    def ready(self) -> bool:
        return self._loaded.is_set() and all(e.ready for e in self._entries.values())

    def entries(self) -> list[ModelEntry]:
        return list(self._entries.values())

    def get(self, name: str) -> ModelEntry | None:
        """The model configured under `name`, or under one of its aliases."""
        return self._entries.get(self._aliases.get(name, name))

    def first_for(self, method: Method[Any, Any]) -> ModelEntry | None:
        """The first configured model that offers `method` (a request that names no model gets it)."""
        return next((e for e in self._entries.values() if e.offers(method)), None)


def _checked_remote(config: ModelConfig, description: Any) -> ModelDescription:
    if not isinstance(description, ModelDescription):  # a replica of another maas version answered
        raise TypeError(f"the Ray replica of {config.name!r} described itself as {type(description).__name__}")
    return description
