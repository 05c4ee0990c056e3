"""`maas-server serve` with ray-backed models: reach the cluster and deploy, before gunicorn forks.

The master must not hold a Ray connection when it forks (Ray's gRPC threads do not survive a
fork), so the work happens in a child process (``python -m maas_server.serve.ray_start``): it
connects (or, for ``--ray-address local``, starts a Ray instance), deploys the application or
attaches to it (runtime/ray_backend.py), and reports the address the workers connect to. For
``local`` it then stays, holding the instance, until serve exits and its stdin closes; else it
disconnects and exits. A plain subprocess rather than multiprocessing: gunicorn's workers would
inherit multiprocessing's record of the child and try to join it at exit.

This module imports no Ray itself; only the child does. It sets two of Ray's own variables for
the workers, which read them when they import Ray:

- ``RAY_DISABLE_FAILURE_SIGNAL_HANDLER=1``: a Ray driver otherwise installs a crash handler for
  SIGTERM that prints a stack and aborts the process, so gunicorn's graceful stop (a worker
  finishes its requests on SIGTERM) would kill the requests in flight instead;
- ``RAY_AUTH_MODE``, for ``local``: a Ray instance that ``ray.init()`` starts turns token
  authentication on (Ray 2.60) by setting it in the process that started it, and a driver that
  connects by address (our workers) only sends the token when the variable says so.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from typing import IO, Any

from ..config import ServerConfig

AUTH_MODE = "RAY_AUTH_MODE"  # Ray's variable: "token" when the cluster wants its token from drivers
NO_CRASH_HANDLER = "RAY_DISABLE_FAILURE_SIGNAL_HANDLER"
START_TIMEOUT_S = 180.0  # reaching a cluster and handing it the application; not the models' loading
REPORT = "maas-ray-start: "  # marks the child's one line of report among Ray's own output

_keep: list[subprocess.Popen[str]] = []  # `local`: the instance lives while this child's stdin stays open


class RayStartError(RuntimeError):
    """Ray could not be reached, started or deployed to; the message says why and what to do."""


def start(settings: ServerConfig) -> str:
    """Prepare Ray for the workers; the address they connect to. Raises RayStartError."""
    # Only what the runtime reads crosses over (no database URL or token goes near Ray).
    config = settings.model_dump_json(include=set(ServerConfig.model_fields))
    child = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write(config + "\n")
    child.stdin.flush()
    report = _report(child.stdout, time.monotonic() + START_TIMEOUT_S)
    if report is None:
        child.kill()
        raise RayStartError(f"Ray at {settings.ray_address!r} did not answer within {START_TIMEOUT_S:g}s "
                            f"(or the process preparing it exited: code {child.poll()})")
    if "error" in report:
        child.wait(30)
        raise RayStartError(report["error"])
    _keep.append(child)
    # The workers inherit these with the fork (the module docstring says why).
    os.environ.setdefault(NO_CRASH_HANDLER, "1")
    if report["auth_mode"]:
        os.environ[AUTH_MODE] = report["auth_mode"]
    return str(report["address"])


def _report(stdout: IO[str], deadline: float) -> dict[str, Any] | None:
    """The child's report line; its other output (Ray's) goes on to our stderr."""
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([stdout], [], [], left)[0]:
            return None
        line = stdout.readline()
        if not line:
            return None  # it exited without reporting
        if line.startswith(REPORT):
            return json.loads(line[len(REPORT):])  # type: ignore[no-any-return]
        sys.stderr.write(line)
    return None


def _prepare(config: ServerConfig) -> dict[str, Any]:
    """In the child: connect or start, deploy or attach; what the parent needs to know."""
    from ..runtime import ray_backend

    try:
        address = _start_local() if config.ray_address == "local" else _connect(config)
        what = ray_backend.deploy_or_attach(config.model_copy(update={"ray_address": address}))
    except Exception as exc:  # noqa: BLE001 - reported to serve, which prints it and exits 2
        return {"error": _explained(config, exc)}
    print(f"maas-server: Ray application {config.ray_app!r} {what} at {address}", file=sys.stderr, flush=True)
    # `local`: what ray.init() chose for the instance it started; else the environment says it already.
    return {"address": address, "auth_mode": os.environ.get(AUTH_MODE) if config.ray_address == "local" else None}


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


def _explained(config: ServerConfig, exc: Exception) -> str:
    if isinstance(exc, ConnectionError):
        return (f"{exc}; start Ray first (`ray start --head`), pass the cluster's address, or use "
                f"--ray-address local to start one on this machine")
    return f"cannot deploy the ray-backed models to {config.ray_address!r}: {type(exc).__name__}: {exc}"


def main() -> None:
    config = ServerConfig.model_validate_json(sys.stdin.readline())
    report = _prepare(config)
    print(REPORT + json.dumps(report), flush=True)
    if config.ray_address == "local" and "error" not in report:
        sys.stdin.read()  # until serve exits: its end of the pipe closes (the workers' copies with it)
    import ray

    ray.shutdown()  # `local`: the instance ends with it


if __name__ == "__main__":  # pragma: no cover - run by start() as a child process
    main()
