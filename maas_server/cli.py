"""`maas-server serve`: validate the config, then run the app under gunicorn.

Defaults: one worker (one copy of every model; a second worker doubles memory and competes for
the same cores) with many threads (gthread), because request threads mostly wait on a runner or
hold an open stream. The runner threads do the compute.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from .accounts import commands as account_commands
from .config import ConfigError, load_config


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command in ("keys", "usage"):
        return account_commands.run(args)
    if args.command != "serve":
        parser.print_help()
        return 2
    try:
        load_config(args.config)  # fail fast, with a readable message, before gunicorn starts
    except ConfigError as exc:
        print(f"maas-server: {exc}", file=sys.stderr)
        return 2
    refusal = _prepare_accounts(args)
    if refusal:
        print(f"maas-server: {refusal}", file=sys.stderr)
        return 2
    _serve(args)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maas-server", description="Serve models over HTTP.")
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="start the server (gunicorn)", parents=[account_commands.store_options()])
    serve.add_argument("--config", help="TOML config file (default: the packaged three-model config)")
    serve.add_argument("--host", default=os.environ.get("MAAS_HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("MAAS_PORT", "8000")))
    serve.add_argument("--workers", type=int, default=1, help="gunicorn worker processes (each loads every model)")
    serve.add_argument("--threads", type=int, default=64, help="request threads per worker (open streams hold one)")
    serve.add_argument("--timeout", type=int, default=120,
                       help="gunicorn worker heartbeat timeout in seconds (gthread workers beat while threads work)")
    serve.add_argument("--graceful-timeout", type=int, default=30, help="seconds to finish requests on SIGTERM")
    serve.add_argument("--log-level", default=os.environ.get("MAAS_LOG_LEVEL", "info"))
    serve.add_argument("--allow-anonymous", action="store_true",
                       help="serve /v1 without API keys on a non-loopback address (MAAS_ALLOW_ANONYMOUS=1)")
    serve.add_argument("--log-content", action="store_true",
                       help="DEBUG ONLY: write request bodies (prompts) into the request log (MAAS_LOG_CONTENT=1)")
    serve.add_argument("--certfile", help="TLS certificate (PEM); with --keyfile the server speaks HTTPS")
    serve.add_argument("--keyfile", help="TLS private key (PEM)")
    account_commands.add_commands(commands)
    return parser


def _prepare_accounts(args: argparse.Namespace) -> str | None:
    """Before the fork: settings into the environment for the workers, the store migrated, a fresh
    metrics folder. Returns why serving is refused, if it is."""
    if args.allow_anonymous:
        os.environ["MAAS_ALLOW_ANONYMOUS"] = "1"
    if args.log_content:
        os.environ["MAAS_LOG_CONTENT"] = "1"
    if bool(args.certfile) != bool(args.keyfile):
        return "--certfile and --keyfile go together"
    settings = account_commands.settings_from(args)
    from .ops.multiproc import prepare_multiprocess_dir  # before anything imports prometheus_client

    prepare_multiprocess_dir()
    return account_commands.check_serving_address(args.host, settings.allow_anonymous, settings)


# gunicorn's dictConfig defaults with the JSON formatter; its loggers stop propagating to the root's
# handler, which would print each line twice.
_GUNICORN_JSON_LOGS = {
    "formatters": {"generic": {"()": "maas_server.ops.logs.JsonFormatter"}},
    "loggers": {name: {"level": "INFO", "handlers": [handler], "propagate": False, "qualname": name}
                for name, handler in (("gunicorn.error", "error_console"), ("gunicorn.access", "console"))},
}


def _serve(args: argparse.Namespace) -> None:
    from gunicorn.app.base import BaseApplication

    from .app import configure_logging, create_app
    from .ops.metrics import worker_exited

    class _Gunicorn(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            options = {
                "bind": f"{args.host}:{args.port}",
                "workers": args.workers,
                "worker_class": "gthread",
                "threads": args.threads,
                "timeout": args.timeout,
                "graceful_timeout": args.graceful_timeout,
                "loglevel": args.log_level,
                "accesslog": None,  # maas.access logs each request as JSON (api/accounting.py)
                "certfile": args.certfile,
                "keyfile": args.keyfile,
                "child_exit": lambda _arbiter, worker: worker_exited(worker.pid),
            }
            if os.environ.get("MAAS_LOG_FORMAT", "json") == "json":  # gunicorn's own lines as JSON too
                options["logconfig_dict"] = _GUNICORN_JSON_LOGS
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            # Runs in each worker after the fork: models load there, never in the master.
            configure_logging(getattr(logging, args.log_level.upper(), logging.INFO))
            return create_app(load_config(args.config))

    _Gunicorn().run()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
