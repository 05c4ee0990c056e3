"""Models served by Ray Serve replicas, behind the runtime's handles: the server's side of the hop.

A :class:`RayRunner` offers what a local Runner offers (``submit_many``, ``stream``, per-item
handles with ``cancel()``), so the wire layer cannot tell where a model runs. Each call becomes
one request to the model's deployment through a Ray Serve ``DeploymentHandle`` (the replica side
is runtime/ray_replica.py); the replies resolve the handles' futures, and a stream's events land
on its EventStream in order. One event loop thread per process (:class:`_Bridge`) awaits them all.

Faults, and what callers see:
- a replica that dies before it answered (killed, out of memory): the call is sent again, to
  another replica, up to ``ATTEMPTS`` times; a stream is sent again only if none of its events
  arrived yet. Past that, or once a stream is under way, its items fail with ModelUnavailable
  (a 503 with Retry-After; a stream ends with an error event and ``[DONE]``);
- no replica running, or the cluster unreachable (the status watch cannot ask the Serve
  controller): calls are refused at once with ModelUnavailable, so nothing waits on a dead
  cluster, and ``available()`` is False, so /ready says 503. Local models are not involved;
- Ray's own queue full (BackPressureError): QueueFull, as a full local queue;
- a cancelled handle (the client left) cancels the Ray request once every item of its call is
  cancelled: Ray raises CancelledError in the replica, which cancels its runner's handles.

Deploying: the first server deploys the application (:func:`deploy_or_attach`); a server that
finds it running with the same config attaches; one that finds another config refuses to start
unless told to redeploy (``ray_redeploy``), which rolls the new config out (docs/scaling.md).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from concurrent.futures import CancelledError
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import ray
from ray import serve
from ray.exceptions import (
    NodeDiedError,
    RayActorError,
    RayError,
    RayTaskError,
    TaskCancelledError,
    WorkerCrashedError,
)
from ray.serve.exceptions import (
    BackPressureError,
    DeploymentUnavailableError,
    ReplicaUnavailableError,
    RequestCancelledError,
)
from ray.serve.handle import DeploymentHandle, DeploymentResponseGenerator

from ..config import ModelConfig, ServerConfig
from ..models import TASKS
from ..models.contract import Method, ModelDescription
from ..ops import metrics
from .handles import EventStream, Finished, Handle, Progress, Replicas, Work
from .ray_replica import INDEX, Reply, application, fingerprint
from .runner import ModelUnavailable, Overloaded, QueueFull

log = logging.getLogger("maas.runtime")

In = TypeVar("In")
Out = TypeVar("Out")

ATTEMPTS = 3  # sends of one call when its replica dies before answering
RETRY_PAUSE_S = 0.2  # before sending again: Serve's router needs a moment to drop the dead replica
STATUS_INTERVAL_S = 1.0  # how often the status watch asks the Serve controller
STATUS_TIMEOUT_S = 5.0  # no answer in this long: the cluster counts as unreachable
DESCRIBE_TIMEOUT_S = 120.0  # a replica that runs but does not answer describe() in this long is stuck
PROBE_TIMEOUT_S = 5.0  # a cluster's GCS port that does not accept a connection in this long is unreachable
UNAVAILABLE_RETRY_S = 5  # Retry-After for a model with no running replica or an unreachable cluster

_REPLICA_LOST = (RayActorError, ReplicaUnavailableError, WorkerCrashedError, NodeDiedError)
_CANCELLED = (RequestCancelledError, TaskCancelledError, asyncio.CancelledError)


class RayConfigMismatch(RuntimeError):
    """The Ray application runs another config than this server's, and redeploying was not asked for."""


def check_address(address: str) -> None:
    """Refuse what cannot work, before anything connects: Ray Client cannot stream from a deployment."""
    if address.startswith("ray://"):
        raise ValueError(
            f"ray_address {address!r} is a Ray Client address, and Ray Serve does not stream through Ray Client "
            f"(\"Streaming DeploymentHandles are not currently supported ... using Ray Client\"); run the server "
            f"on a node of the cluster (`ray start --address HEAD:6379 --num-cpus 0`) and pass --ray-address auto")


def connect(address: str) -> None:
    """Connect this process to the Ray cluster at `address` (auto, HOST:PORT), unless it already is."""
    check_address(address)
    if ray.is_initialized():
        return
    if address == "local":
        # A local instance belongs to the process that started it (`maas-server serve` starts one before
        # its workers fork, and hands them its address); started here it would die with this thread.
        raise ValueError("ray_address 'local' is resolved by `maas-server serve`; in your own process, "
                         "call ray.init() first or pass the cluster's address")
    _probe(address)
    try:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    except Exception as exc:  # every way of not connecting gets the same clear message
        raise ConnectionError(f"cannot reach the Ray cluster at {address!r}: {type(exc).__name__}: {exc}") from exc


def _probe(address: str) -> None:
    """Fail fast when nothing listens at HOST:PORT: ray.init would wait minutes for an absent GCS."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return  # auto: Ray finds the cluster this machine belongs to, or says at once that there is none
    try:
        socket.create_connection((host, int(port)), timeout=PROBE_TIMEOUT_S).close()
    except OSError as exc:
        raise ConnectionError(f"cannot reach the Ray cluster at {address!r}: nothing answers there "
                              f"({exc.strerror or exc})") from None


def start_serve() -> None:
    """Start Serve without its HTTP proxy: this server calls the replicas through handles (a no-op if running)."""
    serve.start(proxy_location="Disabled")


def serve_details(timeout: float = STATUS_TIMEOUT_S) -> dict[str, Any]:
    """What the Serve controller knows: applications, deployments, replicas and their states.

    ``serve.status()`` lacks the target replica count and the deployments' user_config, which the
    details have; the client's own call has no timeout, and an unreachable cluster must not hang us.
    """
    from ray.serve.context import _get_global_client

    client = _get_global_client()
    assert client is not None  # it raises instead when no controller runs
    return cast(dict[str, Any], ray.get(client._controller.get_serve_instance_details.remote(), timeout=timeout))


def deployed_fingerprints(app: str) -> dict[str, str] | None:
    """Each model deployment of the running application `app` and its config's fingerprint; None when absent."""
    from ray.serve.context import _get_global_client

    if _get_global_client(raise_if_no_controller_running=False) is None:
        return None  # Serve has not started on this cluster
    found = serve_details().get("applications", {}).get(app)
    if found is None or found.get("status") == "DELETING":
        return None
    return {name: (d["deployment_config"].get("user_config") or {}).get("fingerprint", "")
            for name, d in found.get("deployments", {}).items() if name != INDEX}


def deploy_or_attach(config: ServerConfig) -> str:
    """Deploy the config's ray-backed models as one Serve application, or find them deployed.

    Returns what it did: "attached" (same config running), "deployed" (none was) or "redeployed"
    (another config ran, and ``ray_redeploy`` asked for this one). Does not wait for replicas.
    """
    wanted = {m.name: fingerprint(m, config.cache_dir) for m in config.ray_models()}
    running = deployed_fingerprints(config.ray_app)
    if running == wanted:
        return "attached"
    if running is not None and not config.ray_redeploy:
        raise RayConfigMismatch(_mismatch(config.ray_app, running, wanted))
    start_serve()
    serve.run_many([serve.RunTarget(application(config), name=config.ray_app, route_prefix=None)],
                   wait_for_applications_running=False)
    return "deployed" if running is None else "redeployed"


def _mismatch(app: str, running: dict[str, str], wanted: dict[str, str]) -> str:
    changed = sorted(name for name in wanted.keys() & running.keys() if wanted[name] != running[name])
    parts = [f"{what}: {', '.join(names)}" for what, names in (
        ("changed", changed), ("not deployed", sorted(wanted.keys() - running.keys())),
        ("deployed but not in this config", sorted(running.keys() - wanted.keys()))) if names]
    return (f"the Ray application {app!r} runs another config ({'; '.join(parts)}); start with --ray-redeploy to "
            f"roll this config out (the servers attached to it keep serving through the rolling update), or give "
            f"this server another ray_app")


class RayBackend:
    """This process's link to the Ray application: connection, status watch, the event loop of the hop."""

    def __init__(self, config: ServerConfig) -> None:
        assert config.ray_address is not None  # the config refuses ray models without one
        connect(config.ray_address)
        what = deploy_or_attach(config)
        log.info("Ray application %r %s at %s", config.ray_app, what, config.ray_address)
        self.app = config.ray_app
        self.bridge = _Bridge()
        self.status = _StatusWatch(config.ray_app, [m.name for m in config.ray_models()])

    def attach(self, model: ModelConfig) -> tuple[RayRunner, ModelDescription]:
        """The model's runner, once one of its replicas runs, and what that replica says about the model."""
        self.status.wait_for_replica(model.name)
        handle = serve.get_deployment_handle(model.name, app_name=self.app)
        description = handle.describe.remote().result(timeout_s=DESCRIBE_TIMEOUT_S)
        return RayRunner(model, handle, self.bridge, self.status), description

    def stop(self) -> None:
        self.status.stop()
        self.bridge.stop()


class _Bridge:
    """One asyncio loop on a thread of its own: it awaits every Ray reply this process waits for."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="ray-bridge", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)


class _StatusWatch:
    """Asks the Serve controller every second how many replicas of each model run, and whether it answers."""

    def __init__(self, app: str, models: list[str]) -> None:
        self.app = app
        self.replicas = {name: Replicas(running=0, target=0) for name in models}
        self.problems: dict[str, str] = {}  # model -> why it has no running replica, as Serve says
        self.failed: set[str] = set()  # models whose deployment failed for good (DEPLOY_FAILED)
        self.reachable = True
        self.changed = threading.Condition()
        self._stopped = threading.Event()
        self.refresh()
        threading.Thread(target=self._watch, name="ray-status", daemon=True).start()

    def _watch(self) -> None:
        while not self._stopped.wait(STATUS_INTERVAL_S):
            self.refresh()

    def refresh(self) -> None:
        try:
            deployments = serve_details().get("applications", {}).get(self.app, {}).get("deployments", {})
        except Exception as exc:  # noqa: BLE001 - any failure to ask means: treat the cluster as unreachable
            if self.reachable:
                log.error("the Ray cluster does not answer (%s: %s); ray-backed models answer 503",
                          type(exc).__name__, exc)
            with self.changed:
                self.reachable = False
                self.changed.notify_all()
            return
        if not self.reachable:
            log.info("the Ray cluster answers again")
        with self.changed:
            self.reachable = True
            for name in self.replicas:
                self._record(name, deployments.get(name))
            self.changed.notify_all()

    def _record(self, name: str, found: dict[str, Any] | None) -> None:
        running = sum(r["state"] == "RUNNING" for r in found["replicas"]) if found else 0
        self.replicas[name] = Replicas(running=running, target=found["target_num_replicas"] if found else 0)
        metrics.set_replicas(name, running, self.replicas[name].target)
        self.problems.pop(name, None)
        self.failed.discard(name)
        if found is None:
            self.problems[name] = f"the Ray application {self.app!r} has no deployment {name!r}"
        elif not running and found["status"] in ("DEPLOY_FAILED", "UNHEALTHY"):
            self.problems[name] = f"its Ray deployment is {found['status']}: {found['message']}"
            if found["status"] == "DEPLOY_FAILED":
                self.failed.add(name)

    def wait_for_replica(self, name: str) -> None:
        """Block until the model has a running replica; raise when its deployment failed for good."""
        with self.changed:
            while not self._stopped.is_set():
                if self.reachable and self.replicas[name].running:
                    return
                if name in self.failed:
                    raise RuntimeError(f"model {name!r}: {self.problems[name]}")
                self.changed.wait(STATUS_INTERVAL_S * 2)

    def available(self, name: str) -> bool:
        return self.reachable and self.replicas[name].running > 0

    def why_unavailable(self, name: str) -> str:
        if not self.reachable:
            return "its Ray cluster does not answer"
        return self.problems.get(name, "none of its Ray replicas is running (Ray Serve restarts them)")

    def stop(self) -> None:
        self._stopped.set()


@dataclass(eq=False)
class _Call:
    """One request to a replica: the items' works, and the Ray response while it is in flight."""

    works: list[Work]
    response: Any = None  # DeploymentResponse or DeploymentResponseGenerator
    started: bool = False  # an event of it arrived: a stream under way is not sent again
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def abandoned(self) -> bool:
        """Every item was cancelled (or is done): the remote request is of no use any more."""
        return all(w.cancel_requested or w.future.done() for w in self.works)

    def cancel_if_abandoned(self) -> None:
        """A handle's cancel(): once its call is abandoned, cancel the Ray request (the replica stops)."""
        with self.lock:
            response = self.response
        if response is not None and self.abandoned:
            response.cancel()

    def sent(self, response: Any) -> None:
        with self.lock:
            self.response = response
        if self.abandoned:  # cancelled while it was being sent
            response.cancel()

    def deliver(self, reply: Reply) -> None:
        """Events and outcomes from the replica: an item's future runs at its first, resolves at its outcome."""
        if reply.refused is not None:
            self.fail(reply.refused)
            return
        for event in reply.events:
            work = self.works[event.index]
            work.served_by = reply.replica
            self.started = True
            if work.future.done():
                continue  # failed or cancelled here meanwhile: its outcome is settled
            if not work.future.running() and not work.future.set_running_or_notify_cancel():
                continue  # cancelled here before the replica got to it: its Finished is queued already
            if isinstance(event, Progress):
                work.emit(event.event)
            else:
                _settle(work, event)

    def fail(self, error: BaseException) -> None:
        for work in self.works:
            if not work.future.done() and (work.future.running() or work.future.set_running_or_notify_cancel()):
                work.future.set_exception(error)


def _settle(work: Work, outcome: Finished) -> None:
    if work.future.done():
        return
    if outcome.error is not None:
        work.future.set_exception(outcome.error)
    else:
        work.future.set_result(outcome.result)


class RayRunner:
    """A model's runner whose work runs in its Ray Serve replicas (each with a Runner of its own)."""

    def __init__(self, config: ModelConfig, handle: DeploymentHandle[Any], bridge: _Bridge,
                 status: _StatusWatch) -> None:
        self.name = config.name
        self.methods = frozenset(method.name for method in TASKS[config.task].methods)
        self._handle = handle
        self._stream_handle = handle.options(stream=True)
        self._bridge = bridge
        self._status = status

    def available(self) -> bool:
        return self._status.available(self.name)

    def refusal(self, timeout: float | None = None, *, measured_only: bool = False) -> Overloaded | None:
        """None: each replica's runner judges its own queue when the call reaches it."""
        return None

    def replicas(self) -> Replicas:
        return self._status.replicas[self.name]

    def stop(self, timeout: float | None = 5.0) -> None:
        """Nothing to stop here: the replicas belong to the Ray application, which outlives this server."""

    def submit_many(self, method: Method[In, Out], items: Iterable[In],
                    timeout: float | None = None) -> list[Handle[Out]]:
        """Send the items to a replica as one call (all or none are queued there, as locally)."""
        call = self._new_call(method, list(items))
        self._bridge.run(self._call(call, method, [w.item for w in call.works], timeout))
        return [Handle(work) for work in call.works]

    def stream(self, method: Method[In, Out], items: list[In], timeout: float | None = None) -> EventStream[Out]:
        """As submit_many, with each item's events, then its outcome, on one queue in order."""
        import queue

        events: queue.SimpleQueue[Progress | Finished] = queue.SimpleQueue()
        call = self._new_call(method, items, events)
        for work in call.works:
            work.future.add_done_callback(work.report_outcome)
        self._bridge.run(self._stream(call, method, items, timeout))
        return EventStream([Handle(work) for work in call.works], events)

    def _new_call(self, method: Method[Any, Any], items: list[Any], events: Any = None) -> _Call:
        if method.name not in self.methods:
            raise ValueError(f"model {self.name!r} has no method {method.name!r}")
        if not self.available():
            raise ModelUnavailable(f"model {self.name!r} is unavailable: {self._status.why_unavailable(self.name)}; "
                                   f"retry in {UNAVAILABLE_RETRY_S}s", retry_after=UNAVAILABLE_RETRY_S)
        now = time.monotonic()
        call = _Call([Work(method.name, item, enqueued=now, index=i, events=events) for i, item in enumerate(items)])
        for work in call.works:
            work.on_cancel = call.cancel_if_abandoned
        return call

    async def _call(self, call: _Call, method: Method[Any, Any], items: list[Any], timeout: float | None) -> None:
        async def once() -> None:
            response = self._handle.call.remote(method, items, timeout)
            call.sent(response)
            call.deliver(await response)

        await self._with_resends(call, once)

    async def _stream(self, call: _Call, method: Method[Any, Any], items: list[Any], timeout: float | None) -> None:
        async def once() -> None:
            sent = self._stream_handle.stream.remote(method, items, timeout)
            generator = cast(DeploymentResponseGenerator[Reply], sent)
            call.sent(generator)
            async for reply in generator:
                call.deliver(reply)
            call.fail(ModelUnavailable(f"the replica of {self.name!r} ended the stream early"))  # a no-op if done

        await self._with_resends(call, once)

    async def _with_resends(self, call: _Call, once: Callable[[], Awaitable[None]]) -> None:
        """Send `call` (`once`), again to another replica when its replica is lost before anything arrived."""
        for attempt in range(1, ATTEMPTS + 1):
            if call.abandoned:  # cancelled before it was (re)sent: nothing to ask a replica for
                call.fail(CancelledError())
                return
            try:
                await once()
                return
            except _REPLICA_LOST as exc:
                if call.started or attempt == ATTEMPTS or call.abandoned:
                    call.fail(self._lost(exc, attempt))  # under way: its client has text already; no resend
                    return
                log.warning("a replica of %s was lost before it answered (%s); sending the call again",
                            self.name, type(exc).__name__)
                await asyncio.sleep(RETRY_PAUSE_S)
            except BaseException as exc:  # every outcome must reach the waiting handles
                call.fail(_translated(exc))
                if isinstance(exc, asyncio.CancelledError) and not call.abandoned:
                    raise
                return

    def _lost(self, exc: BaseException, attempts: int) -> ModelUnavailable:
        log.error("a replica of %s was lost (%s: %s) after %d attempt(s)", self.name, type(exc).__name__, exc, attempts)
        return ModelUnavailable(f"the Ray replica serving model {self.name!r} stopped before it answered; retry",
                                retry_after=1)


def _translated(exc: BaseException) -> BaseException:
    """A Ray exception as the runtime error with the same meaning for the caller (the wire maps those)."""
    if isinstance(exc, RayTaskError):
        return exc  # the replica's own code raised: a bug, not an outage (the wire says 500)
    if isinstance(exc, _CANCELLED):
        return CancelledError()
    if isinstance(exc, BackPressureError):
        return QueueFull(f"the model's Ray queue is full ({exc})")
    if isinstance(exc, DeploymentUnavailableError):
        return ModelUnavailable(f"the model's Ray deployment is unavailable ({exc})", retry_after=UNAVAILABLE_RETRY_S)
    if isinstance(exc, RayError):
        return ModelUnavailable(f"Ray could not run the request ({type(exc).__name__}: {exc})",
                                retry_after=UNAVAILABLE_RETRY_S)
    return exc
