"""Prometheus metrics, correct under several gunicorn workers.

`maas-server serve` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder before gunicorn forks
(``serve.multiproc.prepare_multiprocess_dir``): each worker then writes its samples to files there and
``/metrics`` sums them across workers (``render``). Without that variable (tests, a single
process) the default in-process registry is used.

The runtime reports through a few functions, so it needs no Prometheus code of its own:
``observe_batch(model, size, queue_seconds)`` per batch run, ``set_queue_depth(model, depth)``
when its queue changes, ``observe_model_load(model, seconds, backend)`` once per model, and for a
model on Ray ``set_replicas(model, running, target)`` as its deployment changes. The usage writer
reports its rows through ``observe_usage_writer``.

Per-model series of the HTTP tier carry the model's ``backend`` (local, ray), so a dashboard can
tell the hop apart. Queue and batch series come from the runner, where it runs: in the server for a
local model; for a model on Ray the runner runs in its replicas, whose load Ray Serve's own metrics
report (docs/scaling.md says where to scrape them).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

T = TypeVar("T")

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

REQUESTS = Counter("maas_requests", "HTTP requests answered", ["route", "model", "backend", "status"])
LATENCY = Histogram("maas_request_duration_seconds", "Time from request to the end of its response",
                    ["route", "model", "backend", "status"], buckets=_LATENCY_BUCKETS)
IN_FLIGHT = Gauge("maas_requests_in_flight", "Requests being answered now", multiprocess_mode="livesum")
COMPUTE = Counter("maas_compute_seconds", "Seconds of model time used by requests: each item's share of the "
                  "batches and decode steps it was in, and its preparation", ["model", "backend"])
TOKENS = Counter("maas_tokens", "Tokens (or texts/images) processed, from responses' usage",
                 ["model", "backend", "kind"])  # kind: prompt | completion
# "all": one series per worker (a `pid` label), so each worker's load shows, and tests can tell when all loaded.
# A model on Ray: the time this worker took to attach to it (its replicas load on their own).
MODEL_LOAD = Gauge("maas_model_load_seconds", "Time the last load of a model took", ["model", "backend"],
                   multiprocess_mode="all")
# Every worker watches the same deployment: "max" shows it once.
REPLICAS = Gauge("maas_model_replicas", "Replicas of a model on Ray: running now, and its deployment's target",
                 ["model", "state"], multiprocess_mode="max")
SHED = Counter("maas_requests_shed", "Requests refused with 503 before any work, by reason", ["reason"])
OPEN_REQUESTS = Gauge("maas_admitted_requests", "/v1 requests admitted and not yet closed (streams included)",
                      multiprocess_mode="livesum")
MEMORY_RESERVED = Gauge("maas_memory_reserved_bytes", "Working memory held by requests in flight, against "
                        "memory_budget_mb (api/memory.py)", multiprocess_mode="livesum")
QUEUE_DEPTH = Gauge("maas_queue_depth", "Inputs waiting in a model's queue", ["model"], multiprocess_mode="livesum")
BATCH_SIZE = Histogram("maas_batch_size", "Inputs per batch a model ran", ["model"],
                       buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024))
USAGE_PENDING = Gauge("maas_usage_rows_pending", "Usage rows waiting to be written to the store",
                      multiprocess_mode="livesum")
USAGE_WRITE_FAILURES = Counter("maas_usage_write_failures", "Attempts to write usage rows that the store refused "
                               "(the rows are kept and retried)")
USAGE_DROPPED = Counter("maas_usage_rows_dropped", "Usage rows lost: past the pending cap, failed for a reason "
                        "other than the store, or unwritten at exit")
QUEUE_TIME = Histogram("maas_queue_seconds", "Time an input waited in the queue before its batch ran",
                       ["model"], buckets=_LATENCY_BUCKETS)


def observe_request(route: str, model: str, status: int, seconds: float, backend: str = "") -> None:
    REQUESTS.labels(route, model, backend, str(status)).inc()
    LATENCY.labels(route, model, backend, str(status)).observe(seconds)


def observe_compute(model: str, seconds: float, backend: str = "") -> None:
    if seconds > 0:
        COMPUTE.labels(model, backend).inc(seconds)


def observe_tokens(model: str, prompt: int, completion: int, backend: str = "") -> None:
    if prompt:
        TOKENS.labels(model, backend, "prompt").inc(prompt)
    if completion:
        TOKENS.labels(model, backend, "completion").inc(completion)


def observe_batch(model: str, size: int, queue_seconds: Iterable[float] = ()) -> None:
    """One batch ran: its size, and how long each of its inputs waited in the queue."""
    BATCH_SIZE.labels(model).observe(size)
    child = QUEUE_TIME.labels(model)
    for seconds in queue_seconds:
        child.observe(seconds)


def set_queue_depth(model: str, depth: int) -> None:
    QUEUE_DEPTH.labels(model).set(depth)


def observe_model_load(model: str, seconds: float, backend: str = "local") -> None:
    MODEL_LOAD.labels(model, backend).set(seconds)


def set_replicas(model: str, running: int, target: int) -> None:
    REPLICAS.labels(model, "running").set(running)
    REPLICAS.labels(model, "target").set(target)


def observe_usage_writer(*, queued: int = 0, written: int = 0, dropped: int = 0, write_failed: bool = False) -> None:
    """The usage writer took `queued` rows, wrote `written`, dropped `dropped`; a write failed."""
    usage_writer_observer(USAGE_PENDING, USAGE_DROPPED, USAGE_WRITE_FAILURES)(
        queued=queued, written=written, dropped=dropped, write_failed=write_failed)


def usage_writer_observer(pending: Gauge, dropped_rows: Counter, failures: Counter) -> Callable[..., None]:
    """What a usage writer reports through, into these metrics (tests give one writer metrics of its own)."""
    def observe(*, queued: int = 0, written: int = 0, dropped: int = 0, write_failed: bool = False) -> None:
        if queued - written - dropped:
            pending.inc(queued - written - dropped)
        if dropped:
            dropped_rows.inc(dropped)
        if write_failed:
            failures.inc()
    return observe


def timed_loader(loader: Callable[[Any, Any], T]) -> Callable[[Any, Any], T]:
    """Wrap a model loader (model config, server config) -> model so each load time is observed."""

    def load(model_config: Any, server_config: Any) -> T:
        started = time.perf_counter()
        model = loader(model_config, server_config)
        observe_model_load(model_config.name, time.perf_counter() - started)
        return model

    return load


def render() -> tuple[bytes, str]:
    """The exposition text and its content type, summed over workers in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def worker_exited(pid: int) -> None:
    """gunicorn's child_exit hook: a dead worker's live gauges stop counting."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)
