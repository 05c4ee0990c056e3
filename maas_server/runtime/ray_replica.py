"""A model as a Ray Serve deployment: each replica loads the adapter and runs it in the same Runner.

This module runs inside Ray's replica processes (and wherever the application is built). A replica
is what a server process would hold for the model: the adapter, loaded and warmed, and its lanes'
runners, so dynamic and continuous batching happen in the replica. It answers two calls:

- ``call(method, items, timeout)``: every item's outcome, once all are done (:class:`Reply`);
- ``stream(method, items, timeout)``: a generator of :class:`Reply` batches, each holding the
  events (``Progress``, ``Finished``) that happened since the last, in order.

Outcomes travel as values, never as raised exceptions: an item's ``InvalidInput``, ``ItemFailed``,
``QueueTimeout`` or a call's ``QueueFull``/``Overloaded`` arrives as the same typed exception the
local runner gives, so the wire layer answers with the same status (Ray would wrap a raised one).
When the caller cancels (the client left), Ray raises ``CancelledError`` in the replica's coroutine;
the replica then cancels its handles, so queued items never start and decode rows leave at the next
step. The server side of the hop is runtime/ray_backend.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray import serve
from ray.serve.deployment import Application, Deployment

from .. import __version__
from ..config import ModelConfig, ServerConfig, read_config_file
from ..models.contract import Method, ModelDescription
from .assembly import build_runners, checked_description, load_and_warm
from .handles import Finished, Handle, Progress
from .runner import Runner

INDEX = "_index"  # the application's ingress: model names cannot start with "_", so it never clashes


@dataclass
class Reply:
    """What a replica sends back: who answered, and outcomes or events (or why the call was refused)."""

    replica: str
    events: list[Progress | Finished] = field(default_factory=list)
    refused: BaseException | None = None  # the call was not queued at all (QueueFull, Overloaded, bad input)


class _LoopSink:
    """An event sink the runner thread puts on, that the replica's event loop awaits."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Progress | Finished] = asyncio.Queue()

    def put(self, item: Progress | Finished) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    async def next_batch(self) -> list[Progress | Finished]:
        """At least one event, and every other already waiting (one reply carries them all)."""
        batch = [await self._queue.get()]
        while not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return batch


class ModelReplica:
    """One replica of one model: the adapter, its runners, and the two calls the server makes."""

    def __init__(self, config: ModelConfig, cache_dir: str) -> None:
        from .device import limit_threads

        limit_threads(config.num_cpus or 1)
        model = load_and_warm(config, Path(cache_dir))
        self.description = checked_description(config, model)
        self.lanes = build_runners(config, model, self.description.device)
        self.name = config.name
        self.replica = serve.get_replica_context().replica_id.unique_id
        self.fingerprint: str | None = None

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Ray Serve hands the deployment's user_config here: the fingerprint of the config it was built from."""
        self.fingerprint = user_config.get("fingerprint")

    async def describe(self) -> ModelDescription:
        return self.description

    async def stats(self) -> dict[str, Any]:
        """This replica's id, and its runners' counts: inputs queued now, and inputs their callers cancelled."""
        return {"replica": self.replica, "queued": sum(r.queued for r in self.lanes.values()),
                "cancelled": sum(r.cancelled for r in self.lanes.values())}

    async def call(self, method: Method[Any, Any], items: list[Any], timeout: float | None) -> Reply:
        sink = _LoopSink()
        handles, refused = await self._start(sink, method, items, timeout)
        if refused is not None:
            return Reply(self.replica, refused=refused)
        outcomes: list[Progress | Finished] = []
        try:
            while len(outcomes) < len(handles):
                outcomes += [event for event in await sink.next_batch() if isinstance(event, Finished)]
        finally:
            _cancel(handles)  # the caller cancelled (CancelledError), or a no-op: every item is done
        return Reply(self.replica, outcomes)

    async def stream(self, method: Method[Any, Any], items: list[Any], timeout: float | None) -> AsyncIterator[Reply]:
        sink = _LoopSink()
        handles, refused = await self._start(sink, method, items, timeout)
        if refused is not None:
            yield Reply(self.replica, refused=refused)
            return
        pending = len(handles)
        try:
            while pending:
                events = await sink.next_batch()
                pending -= sum(isinstance(event, Finished) for event in events)
                yield Reply(self.replica, events)
        finally:
            _cancel(handles)  # the caller cancelled or went away: rows leave their decode batch

    async def _start(self, sink: _LoopSink, method: Method[Any, Any], items: list[Any],
                     timeout: float | None) -> tuple[list[Handle[Any]], BaseException | None]:
        runner = self._runner_for(method)
        spec = runner.methods[method.name]
        try:
            if spec.prepare_on_caller:
                # It prepares its items on the caller's thread (image resizing, tokenizing): not on the event loop.
                return await asyncio.to_thread(runner.stream_to, sink, method, items, timeout), None
            return runner.stream_to(sink, method, items, timeout), None  # queueing only: no thread hop
        except Exception as exc:  # noqa: BLE001 - sent back as the value the local runner would raise
            return [], exc

    def _runner_for(self, method: Method[Any, Any]) -> Runner:
        for runner in self.lanes.values():
            if method.name in runner.methods:
                return runner
        raise ValueError(f"model {self.name!r} has no method {method.name!r}")


def _cancel(handles: list[Handle[Any]]) -> None:
    for handle in handles:
        handle.cancel()


class Index:
    """The application's ingress: Ray Serve needs one, and binding the models to it puts them in the app.

    Nothing calls it: the servers call each model's deployment by name.
    """

    def __init__(self, *models: Any) -> None:
        self.models = [getattr(m, "deployment_name", None) for m in models]


def fingerprint(config: ModelConfig, cache_dir: Path) -> str:
    """What a replica was built from (this maas, the model's table, the cache): equal means nothing to redeploy."""
    built_from = {"maas": __version__, "model": config.model_dump(mode="json"), "cache_dir": str(cache_dir)}
    return hashlib.sha256(json.dumps(built_from, sort_keys=True).encode()).hexdigest()[:16]


def application(config: ServerConfig) -> Application:
    """The Ray Serve application of the config's ray-backed models: a deployment each, under one ingress."""
    models = [_deployment(m, config.cache_dir).bind(m, str(config.cache_dir)) for m in config.ray_models()]
    index = serve.deployment(name=INDEX, num_replicas=1, ray_actor_options={"num_cpus": 0})(Index)
    return index.bind(*models)


def _deployment(model: ModelConfig, cache_dir: Path) -> Deployment:
    scaling: dict[str, Any] = {"num_replicas": model.replicas or 1}
    if model.autoscaling is not None:
        scaling = {"autoscaling_config": {"min_replicas": model.autoscaling.min, "max_replicas": model.autoscaling.max,
                                          "target_ongoing_requests": model.autoscaling.target_ongoing_requests}}
    return serve.deployment(
        name=model.name,
        ray_actor_options={"num_cpus": model.num_cpus or 1, "num_gpus": model.num_gpus or 0},
        # The replica's runner bounds its own queue (503 past max_queue), so Ray sends it as many
        # requests as that: a lower cap would starve its batches. Past that, Ray's own queue (the
        # same size again) answers BackPressureError, which the server turns into a 503.
        max_ongoing_requests=model.max_queue, max_queued_requests=model.max_queue,
        user_config={"fingerprint": fingerprint(model, cache_dir)},
        # A redeploy starts replacements before it stops old replicas (at least one extra, rounded up),
        # so a one-replica model keeps serving through it; Serve's default stops the old one first.
        max_surge_percent=25,
        **scaling,
    )(ModelReplica)


def app_builder(args: dict[str, Any]) -> Application:
    """For Ray's own deployers (KubeRay's RayService, `serve deploy`): ``import_path:
    maas_server.runtime.ray_replica:app_builder`` with ``args: {config: /path/to/config.toml}``."""
    settings = {"ray_address": "auto", **read_config_file(args["config"])}
    return application(ServerConfig.model_validate(settings))
