"""The registry: which models are configured, loading them, and their runners.

Models load on a background thread started by the app factory (so after gunicorn forks, and
while /health already answers); /ready turns 200 once every model is loaded and warmed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..config import ModelConfig, ServerConfig
from ..models import TASKS, missing_methods
from ..models.base import DEFAULT_LANE, Method, ModelDescription, TaskModel
from .runner import Runner

log = logging.getLogger("maas.runtime")

Loader = Callable[[ModelConfig, ServerConfig], TaskModel]


@dataclass
class ModelEntry:
    config: ModelConfig
    runner: Runner | None = None  # the default lane's; set once the model has loaded
    lanes: dict[str, Runner] = field(default_factory=dict)  # every lane's runner, the default one included
    description: ModelDescription | None = None  # what the model says about itself, once loaded
    error: str | None = None
    load_seconds: float | None = None

    @property
    def ready(self) -> bool:
        return self.runner is not None

    def offers(self, method: Method[Any, Any]) -> bool:
        """Whether this model's task offers `method` (known from the config, before the model loads)."""
        return TASKS[self.config.task].offers(method)

    def runner_for(self, method: Method[Any, Any]) -> Runner:
        """The runner of the lane that runs `method` (the model must have loaded)."""
        for runner in self.lanes.values():
            if method.name in runner.methods:
                return runner
        raise ValueError(f"model {self.config.name!r} has no method {method.name!r}")


def load_configured_model(config: ModelConfig, server: ServerConfig) -> TaskModel:
    """The real loader: choose device and dtype, build the task adapter, warm it up."""
    from ..models import load_model
    from .device import choose_device, choose_dtype

    device = choose_device(config.device)
    model = load_model(config, device, choose_dtype(config.dtype, device), server.cache_dir)
    model.warmup()  # the first user request should not pay for lazy initialisation
    return model


def _max_wait_ms(config: ModelConfig, device: str) -> float:
    # Measured (docs/performance.md): on CPU a 2 ms wait only adds latency at low load, because
    # under load inputs pile up while the model is busy anyway. On a GPU a step is short.
    if config.max_wait_ms is not None:
        return config.max_wait_ms
    return 2.0 if device.startswith("cuda") else 0.0


def _max_prefill_tokens(config: ModelConfig, device: str) -> int:
    # A prefill stalls every running stream for its duration; on CPU a few prompts' worth per step
    # keeps time to first token low for those who arrive together (docs/performance.md).
    if config.max_prefill_tokens is not None:
        return config.max_prefill_tokens
    return 8192 if device.startswith("cuda") else 128


class ModelRegistry:
    def __init__(self, config: ServerConfig, loader: Loader = load_configured_model) -> None:
        self.config = config
        self._loader = loader
        self._entries = {m.name: ModelEntry(m) for m in config.models}
        self._loaded = threading.Event()

    # -- loading

    def load_in_background(self) -> threading.Thread:
        thread = threading.Thread(target=self.load_all, name="model-loader", daemon=True)
        thread.start()
        return thread

    def load_all(self) -> None:
        total = len(self._entries)
        for position, entry in enumerate(self._entries.values(), start=1):
            self._load(entry, f"[{position}/{total}]")
        self._loaded.set()

    def _load(self, entry: ModelEntry, progress: str) -> None:
        cfg = entry.config
        log.info("%s loading %s (%s) from %s", progress, cfg.name, cfg.task, cfg.source)
        started = time.perf_counter()
        try:
            model = self._loader(cfg, self.config)
            description = _checked(cfg, model)
        except Exception as exc:  # noqa: BLE001 - one broken model must not take the others down
            entry.error = f"{type(exc).__name__}: {exc}"
            log.error("%s failed to load %s: %s", progress, cfg.name, entry.error)
            return
        entry.load_seconds = time.perf_counter() - started
        entry.lanes = {lane: _runner(cfg, model, lane, description.device).start() for lane in _lanes(model)}
        entry.description = description
        entry.runner = entry.lanes[DEFAULT_LANE]
        log.info("%s loaded %s on %s (%s) in %.1fs", progress, cfg.name, description.device, description.dtype,
                 entry.load_seconds)

    def wait_until_loaded(self, timeout: float | None = None) -> bool:
        return self._loaded.wait(timeout)

    def stop(self) -> None:
        for entry in self._entries.values():
            for runner in entry.lanes.values():
                runner.stop()

    # -- lookup

    @property
    def ready(self) -> bool:
        return self._loaded.is_set() and all(e.ready for e in self._entries.values())

    def entries(self) -> list[ModelEntry]:
        return list(self._entries.values())

    def get(self, name: str) -> ModelEntry | None:
        return self._entries.get(name)

    def first_for(self, method: Method[Any, Any]) -> ModelEntry | None:
        """The first configured model that offers `method` (a request that names no model gets it)."""
        return next((e for e in self._entries.values() if e.offers(method)), None)


def _lanes(model: TaskModel) -> list[str]:
    """The model's lanes, the default one first (it exists even when every method is elsewhere)."""
    others = {spec.lane for spec in model.batch_methods().values()} - {DEFAULT_LANE}
    return [DEFAULT_LANE, *sorted(others)]


def _runner(config: ModelConfig, model: TaskModel, lane: str, device: str) -> Runner:
    if lane == DEFAULT_LANE:
        return Runner(config.name, model, max_batch_size=config.max_batch_size,
                      max_wait_ms=_max_wait_ms(config, device), max_queue=config.max_queue,
                      queue_timeout_s=config.queue_timeout_s, max_prefill_tokens=_max_prefill_tokens(config, device))
    # Another lane (explanations) runs what its adapter batches (often one at a time), with its own queue.
    return Runner(f"{config.name}/{lane}", model, max_batch_size=config.max_batch_size, max_wait_ms=0,
                  max_queue=config.explain_max_queue, queue_timeout_s=config.queue_timeout_s, lane=lane)


def _checked(config: ModelConfig, model: TaskModel) -> ModelDescription:
    """The model's description, once it is known to implement every method its task declares."""
    missing = missing_methods(config.task, model)
    if missing:
        raise TypeError(f"the {config.task} adapter {type(model).__name__} does not implement {', '.join(missing)}")
    return model.describe()
