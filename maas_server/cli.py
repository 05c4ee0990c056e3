"""`maas-server serve`: validate the config, then run the app under gunicorn.

Defaults: one worker (one copy of every model; a second worker doubles memory and competes for
the same cores) with many threads (our gthread worker, ops/worker.py), because request threads
mostly wait on a runner or hold an open stream. The runner threads do the compute. The worker gets
``max_concurrent_requests`` threads plus a reserve, so the admission bound (503 past it) engages
before the thread pool runs out, and health checks always find a thread.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from .accounts import commands as account_commands
from .config import ConfigError, load_config

RESERVE_THREADS = 64  # beyond max_concurrent_requests: /health, /ready, /metrics and clients still sending


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command in ("keys", "usage"):
        return account_commands.run(args)
    if args.command != "serve":
        parser.print_help()
        return 2
    try:
        config = load_config(args.config)  # fail fast, with a readable message, before gunicorn starts
    except ConfigError as exc:
        print(f"maas-server: {exc}", file=sys.stderr)
        return 2
    refusal = account_commands.prepare_serve(args)
    if refusal:
        print(f"maas-server: {refusal}", file=sys.stderr)
        return 2
    if args.threads is None:
        args.threads = config.max_concurrent_requests + RESERVE_THREADS
    _serve(args)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maas-server", description="Serve models over HTTP.")
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="start the server (gunicorn)")
    serve.add_argument("--config", help="TOML config file (default: the packaged three-model config)")
    serve.add_argument("--host", default=os.environ.get("MAAS_HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("MAAS_PORT", "8000")))
    serve.add_argument("--workers", type=int, default=1, help="gunicorn worker processes (each loads every model)")
    serve.add_argument("--threads", type=int, default=None,
                       help="request threads per worker (open streams hold one); default: the config's "
                            f"max_concurrent_requests + {RESERVE_THREADS} for health checks and slow clients")
    serve.add_argument("--timeout", type=int, default=120,
                       help="gunicorn worker heartbeat timeout in seconds (gthread workers beat while threads work)")
    serve.add_argument("--graceful-timeout", "--drain-seconds", dest="graceful_timeout", type=int, default=30,
                       help="drain window: on SIGTERM, seconds admitted requests (streams too) get to finish")
    serve.add_argument("--header-timeout", type=float, default=10.0,
                       help="seconds a client has to send the request line and headers (then 408)")
    serve.add_argument("--body-timeout", type=float, default=60.0,
                       help="seconds a client has to send the request body (then 408)")
    serve.add_argument("--idle-timeout", type=float, default=10.0,
                       help="longest silence while a client sends its request (then 408)")
    serve.add_argument("--write-timeout", type=float, default=30.0,
                       help="seconds a client may stop reading its response before it is cut off "
                            "(a stream nobody reads frees its place)")
    serve.add_argument("--log-level", default=os.environ.get("MAAS_LOG_LEVEL", "info"))
    account_commands.add_serve_options(serve)  # --data-dir, --allow-anonymous, TLS, --log-content
    account_commands.add_commands(commands)  # keys, usage
    return parser


def _serve(args: argparse.Namespace) -> None:
    from gunicorn.app.base import BaseApplication

    from .app import configure_logging, create_app
    from .ops.logs import GUNICORN_JSON_LOGS
    from .ops.metrics import worker_exited
    from .ops.multiproc import remove_created_dirs
    from .ops.worker import SocketTimeouts

    timeouts = SocketTimeouts(header_timeout=args.header_timeout, body_timeout=args.body_timeout,
                              idle_timeout=args.idle_timeout, write_timeout=args.write_timeout)

    def post_fork(_arbiter: Any, worker: Any) -> None:
        worker.timeouts = timeouts

    class _Gunicorn(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            options = {
                "bind": f"{args.host}:{args.port}",
                "workers": args.workers,
                "worker_class": "maas_server.ops.worker.MaasWorker",
                "threads": args.threads,
                # Connections beyond the threads wait idle (keep-alive) in the worker's poller.
                "worker_connections": args.threads * 2,
                "timeout": args.timeout,
                "graceful_timeout": args.graceful_timeout,
                "loglevel": args.log_level,
                "accesslog": None,  # maas.access logs each request as JSON (api/accounting.py)
                "certfile": args.certfile,
                "keyfile": args.keyfile,
                "child_exit": lambda _arbiter, worker: worker_exited(worker.pid),
                "on_exit": lambda _arbiter: remove_created_dirs(),
                "post_worker_init": _drain_on_sigterm,
                "post_fork": post_fork,
            }
            if os.environ.get("MAAS_LOG_FORMAT", "json") == "json":  # gunicorn's own lines as JSON too
                options["logconfig_dict"] = GUNICORN_JSON_LOGS
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            # Runs in each worker after the fork: models load there, never in the master.
            configure_logging(getattr(logging, args.log_level.upper(), logging.INFO))
            return create_app(load_config(args.config))

    _Gunicorn().run()


def _drain_on_sigterm(worker: Any) -> None:
    """gunicorn hook, in each worker: on SIGTERM mark the app draining, then let gunicorn stop.

    gunicorn's own handler stops accepting connections and gives in-flight requests the
    graceful timeout to finish; ours makes /ready answer 503 at once on connections still open.
    """
    import signal

    from .app import begin_drain

    gunicorn_handler = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: Any) -> None:
        begin_drain(worker.wsgi)
        if callable(gunicorn_handler):
            gunicorn_handler(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
