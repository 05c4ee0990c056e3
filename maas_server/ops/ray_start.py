"""`maas-server serve` with ray-backed models: reach the cluster and deploy, before gunicorn forks.

The master must not hold a Ray connection when it forks (Ray's gRPC threads do not survive a
fork), so the work happens in a process of its own, started with ``spawn``: it connects (or, for
``--ray-address local``, starts a Ray instance), deploys the application or attaches to it
(runtime/ray_backend.py), and reports the address the workers connect to. For ``local`` it then
stays, holding the instance, until serve exits (its end of the pipe closes); else it disconnects.

This module imports no Ray itself; only the spawned process does.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.connection import Connection

from ..config import ServerConfig

START_TIMEOUT_S = 180.0  # reaching a cluster and handing it the application; not the models' loading


class RayStartError(RuntimeError):
    """Ray could not be reached, started or deployed to; the message says why and what to do."""


def start(settings: ServerConfig) -> str:
    """Prepare Ray for the workers; the address they connect to. Raises RayStartError."""
    # Only what the runtime reads crosses over (no database URL or token goes near Ray).
    config = ServerConfig.model_validate(settings.model_dump(include=set(ServerConfig.model_fields)))
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=_prepare, args=(config, theirs), name="maas-ray", daemon=False)
    process.start()
    theirs.close()
    if not ours.poll(START_TIMEOUT_S):
        process.terminate()
        raise RayStartError(f"Ray at {config.ray_address!r} did not answer within {START_TIMEOUT_S:g}s")
    try:
        outcome, detail = ours.recv()
    except EOFError:
        process.join(5)
        raise RayStartError(f"the process preparing Ray at {config.ray_address!r} exited "
                            f"(code {process.exitcode})") from None
    if outcome != "ok":
        raise RayStartError(detail)
    _keep.append(ours)  # `local`: the instance lives while this end stays open
    return str(detail)


_keep: list[Connection] = []


def _prepare(config: ServerConfig, pipe: Connection) -> None:
    """In the spawned process: connect or start, deploy or attach, report; for `local`, hold the instance."""
    import ray

    from ..runtime import ray_backend

    try:
        address = _start_local() if config.ray_address == "local" else _connect(config)
        what = ray_backend.deploy_or_attach(config.model_copy(update={"ray_address": address}))
    except Exception as exc:  # noqa: BLE001 - reported to serve, which prints it and exits 2
        pipe.send(("error", _explained(config, exc)))
        return
    print(f"maas-server: Ray application {config.ray_app!r} {what} at {address}", flush=True)
    pipe.send(("ok", address))
    if config.ray_address == "local":
        _wait_for_close(pipe)  # then the local instance ends with this process
    ray.shutdown()


def _start_local() -> str:
    import ray

    # Ray's processes die with the thread that started them: this is the process's main thread.
    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    return str(ray.get_runtime_context().gcs_address)


def _connect(config: ServerConfig) -> str:
    from ..runtime import ray_backend

    assert config.ray_address is not None
    ray_backend.connect(config.ray_address)
    return config.ray_address


def _wait_for_close(pipe: Connection) -> None:
    try:
        pipe.recv()
    except (EOFError, OSError):
        pass


def _explained(config: ServerConfig, exc: Exception) -> str:
    if isinstance(exc, ConnectionError):
        return (f"{exc}; start Ray first (`ray start --head`), pass the cluster's address, or use "
                f"--ray-address local to start one on this machine")
    return f"cannot deploy the ray-backed models to {config.ray_address!r}: {type(exc).__name__}: {exc}"
