"""Run a real server in a subprocess for tests and benchmarks: ``with ServerProcess() as url: ...``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """`maas-server serve` on a free loopback port; waits for /ready, terminates on exit.

    `command` replaces ``python -m maas_server.cli`` (the arguments from ``serve`` on follow it): a
    benchmark starts the CLI from a snippet that first turns a module switch on.
    """

    def __init__(self, config: str | None = None, *, ready_timeout: float = 600,
                 extra_args: list[str] | None = None, command: list[str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = config
        self.ready_timeout = ready_timeout
        self.extra_args = extra_args or []
        self.log_path = Path(tempfile.mkdtemp(prefix="maas-server-")) / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.command = command or [sys.executable, "-m", "maas_server.cli"]

    def __enter__(self) -> str:
        args = [*self.command, "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        if self.config:
            args += ["--config", self.config]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(args + self.extra_args, stdout=log, stderr=subprocess.STDOUT,
                                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self.url

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def worker_pids(self) -> list[int]:
        """The gunicorn workers: the children of the server process (the gunicorn master)."""
        assert self.process is not None
        return child_pids(self.process.pid)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):  # not listening yet, or busy loading models
                pass
            time.sleep(0.5)
        raise RuntimeError(f"server not ready after {self.ready_timeout}s:\n{self.log_tail()}")


# -- process memory (Linux /proc), for tests and benchmarks that bound a worker's memory

def child_pids(pid: int) -> list[int]:
    """Processes whose parent is `pid`, read from /proc/*/stat (the kernel may lack /proc/PID/task/*/children)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()  # the command name may hold spaces: skip it
        except OSError:  # the process ended while we looked
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return sorted(children)


def reset_peak_rss(pid: int) -> None:
    """Reset the process's resident-memory high-water mark (VmHWM) to its current RSS."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def memory_bytes(pid: int) -> dict[str, int]:
    """The process's current resident memory (`rss`) and its high-water mark (`peak`), in bytes."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {"rss": _kb(fields["VmRSS"]) * 1024, "peak": _kb(fields["VmHWM"]) * 1024}


def _kb(value: str) -> int:
    return int(value.split()[0])  # "  123456 kB"
