"""Assembling one model: its adapter loaded and warmed, checked against its task, and its runners.

The registry does this for each configured model in this process; a Ray replica does the same in
its own process (runtime/ray_replica.py), so both serve the same adapter behind the same runners.
"""

from __future__ import annotations

from pathlib import Path

from ..config import ModelConfig, ServerConfig
from ..models import missing_methods
from ..models.contract import DEFAULT_LANE, ModelDescription, TaskModel
from .runner import Runner


def load_configured_model(config: ModelConfig, server: ServerConfig) -> TaskModel:
    """The real loader: choose device and dtype, build the task adapter, warm it up."""
    return load_and_warm(config, server.cache_dir)


def load_and_warm(config: ModelConfig, cache_dir: Path) -> TaskModel:
    """Choose device and dtype, build the task adapter, warm it up (a Ray replica calls this too)."""
    from ..models import load_model
    from .device import choose_device, choose_dtype

    device = choose_device(config.device)
    model = load_model(config, device, choose_dtype(config.dtype, device), cache_dir)
    model.warmup()  # the first user request should not pay for lazy initialisation
    return model


def _max_wait_ms(config: ModelConfig, device: str) -> float:
    # Measured (docs/performance.md): on CPU a 2 ms wait only adds latency at low load, because
    # under load inputs pile up while the model is busy anyway. On a GPU a step is short.
    if config.max_wait_ms is not None:
        return config.max_wait_ms
    return 2.0 if device.startswith("cuda") else 0.0


def build_runners(config: ModelConfig, model: TaskModel, device: str) -> dict[str, Runner]:
    """A started runner for each of the model's lanes, the default one first (a Ray replica builds the same)."""
    return {lane: _runner(config, model, lane, device).start() for lane in _lanes(model)}


def _lanes(model: TaskModel) -> list[str]:
    """The model's lanes, the default one first (it exists even when every method is elsewhere)."""
    others = {spec.lane for spec in model.batch_methods().values()} - {DEFAULT_LANE}
    return [DEFAULT_LANE, *sorted(others)]


def _runner(config: ModelConfig, model: TaskModel, lane: str, device: str) -> Runner:
    if lane == DEFAULT_LANE:
        return Runner(config.name, model, max_batch_size=config.max_batch_size,
                      max_wait_ms=_max_wait_ms(config, device), max_queue=config.max_queue,
                      queue_timeout_s=config.queue_timeout_s, max_prefill_tokens=config.prefill_budget(device))
    # Another lane (explanations) runs what its adapter batches (often one at a time), with its own queue.
    return Runner(f"{config.name}/{lane}", model, max_batch_size=config.max_batch_size, max_wait_ms=0,
                  max_queue=config.explain_max_queue, queue_timeout_s=config.queue_timeout_s, lane=lane)


def checked_description(config: ModelConfig, model: TaskModel) -> ModelDescription:
    """The model's description, once it is known to implement every method its task declares."""
    missing = missing_methods(config.task, model)
    if missing:
        raise TypeError(f"the {config.task} adapter {type(model).__name__} does not implement {', '.join(missing)}")
    return model.describe()
