"""`maas-server serve`: read the settings once, then run the app under gunicorn with them.

Defaults: one worker (one copy of every model; a second worker doubles memory and competes for
the same cores) with many threads (our gthread worker, serve/worker.py), because request threads
mostly wait on a runner or hold an open stream. The runner threads do the compute. The worker gets
``max_concurrent_requests`` threads plus a reserve, so the admission bound (503 past it) engages
before the thread pool runs out, and health checks always find a thread.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .accounts import commands as account_commands
from .config import ConfigError
from .serve import options as serve_options
from .serve.ray_start import RayStartError
from .settings import RESERVE_THREADS, Settings, flags_from, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command in ("keys", "usage", "audit"):
        return account_commands.run(args)
    if args.command == "cache":
        return _cache(args)
    if args.command != "serve":
        parser.print_help()
        return 2
    try:
        settings = load_settings(flags_from(args))  # read once, before gunicorn starts: a mistake stops here
    except ConfigError as exc:
        print(f"maas-server: {exc}", file=sys.stderr)
        return 2
    refusal = serve_options.prepare_serve(settings)
    if refusal:
        print(f"maas-server: {refusal}", file=sys.stderr)
        return 2
    if settings.ray_models():
        try:
            settings = _prepare_ray(settings)
        except RayStartError as exc:
            print(f"maas-server: {exc}", file=sys.stderr)
            return 2
    # The store exists now: a worker that finds it gone must answer 503, never make a new, empty (open) one.
    _serve(settings.model_copy(update={"create_store": False}))
    return 0


def _prepare_ray(settings: Settings) -> Settings:
    """Reach the Ray cluster, start one for `--ray-address local`, deploy or attach: before the workers fork.

    A mistake (no cluster, another config deployed) stops serve here with its message. It runs in a
    process of its own (serve/ray_start.py), because Ray's threads do not survive gunicorn's fork; for
    `local` that process keeps the instance until serve exits. Workers get the address to connect to.
    """
    from .serve.ray_start import start

    address = start(settings)
    return settings.model_copy(update={"ray_address": address, "ray_redeploy": False})


def _parser() -> argparse.ArgumentParser:
    # Every flag's dest is a setting's name and its default None, so a flag not given lets the
    # variable, the config file or the setting's default apply (maas_server/settings.py).
    parser = argparse.ArgumentParser(prog="maas-server", description="Serve models over HTTP.")
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="start the server (gunicorn)")
    serve.add_argument("--config", help="TOML config file (MAAS_CONFIG; default: the packaged default config)")
    serve.add_argument("--host", help="address to listen on (MAAS_HOST; default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (MAAS_PORT; default 8000)")
    serve.add_argument("--workers", type=int, help="gunicorn worker processes, each loads every model (default 1)")
    serve.add_argument("--threads", type=int,
                       help="request threads per worker (open streams hold one); default: the config's "
                            f"max_concurrent_requests + {RESERVE_THREADS} for health checks and slow clients")
    serve.add_argument("--timeout", type=int,
                       help="gunicorn worker heartbeat timeout in seconds (gthread workers beat while threads work; "
                            "default 120)")
    serve.add_argument("--graceful-timeout", "--drain-seconds", dest="graceful_timeout", type=int,
                       help="drain window: on SIGTERM, seconds admitted requests (streams too) get to finish "
                            "(default 30)")
    serve.add_argument("--header-timeout", type=float,
                       help="seconds a client has to send the request line and headers, then 408 (default 10)")
    serve.add_argument("--body-timeout", type=float,
                       help="seconds a client has to send the request body, then 408 (default 60)")
    serve.add_argument("--idle-timeout", type=float,
                       help="longest silence while a client sends its request, then 408 (default 10)")
    serve.add_argument("--write-timeout", type=float,
                       help="seconds a client may stop reading its response before it is cut off "
                            "(a stream nobody reads frees its place; default 30)")
    serve.add_argument("--log-level", help="debug, info (default), warning, error or critical (MAAS_LOG_LEVEL)")
    serve.add_argument("--ray-address",
                       help="the Ray cluster of the models with backend = \"ray\" (MAAS_RAY_ADDRESS): auto (the "
                            "cluster this machine is a node of), HOST:PORT, or local (start one here); docs/scaling.md")
    serve.add_argument("--ray-redeploy", action=argparse.BooleanOptionalAction,
                       help="when the Ray application runs another config, roll this one out (a rolling update) "
                            "instead of refusing to start")
    serve_options.add_serve_options(serve)  # --data-dir, --allow-anonymous, TLS, --log-content
    account_commands.add_commands(commands)  # keys, usage, audit
    cache = commands.add_parser("cache", help="list or remove converted models (GGUF -> safetensors)")
    actions = cache.add_subparsers(dest="action", required=True)
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument("--config", help="the server's TOML config file, for its cache_dir (MAAS_CONFIG; "
                                         "MAAS_CACHE_DIR names the folder directly; default ~/.cache/maas)")
    actions.add_parser("list", help="each converted model with its size", parents=[config])
    clear = actions.add_parser("clear", help="remove converted models; a server converts again on its next start",
                               parents=[config])
    clear.add_argument("names", nargs="*", metavar="NAME", help="entries to remove, as `cache list` names them "
                                                               "(default: all)")
    return parser


def _cache(args: argparse.Namespace) -> int:
    """`cache list` and `cache clear`: the converted-model cache that every server on the machine shares."""
    from .models.sources import cache_entries, remove_cache_entry

    try:
        cache_dir = load_settings(flags_from(args)).cache_dir
    except ConfigError as exc:
        print(f"maas-server: {exc}", file=sys.stderr)
        return 2
    entries = cache_entries(cache_dir)
    print(f"cache: {cache_dir}", file=sys.stderr)
    if args.action == "list":
        for entry in entries:
            state = "" if entry.complete else "  (incomplete: a conversion under way or interrupted, or from an " \
                                              "older maas; `cache clear` removes it)"
            print(f"{_size(entry.size):>9}  {entry.path.name}{state}")
        print(f"{_size(sum(e.size for e in entries)):>9}  total, {len(entries)} entries", file=sys.stderr)
        return 0
    unknown = sorted(set(args.names) - {e.path.name for e in entries})
    if unknown:
        print(f"maas-server: no cache entry named {', '.join(unknown)}; `maas-server cache list` shows them",
              file=sys.stderr)
        return 2
    freed = 0
    for entry in entries:
        if args.names and entry.path.name not in args.names:
            continue
        if remove_cache_entry(entry):
            freed += entry.size
            print(f"removed {entry.path.name}")
        else:
            print(f"kept {entry.path.name}: a server is converting it now", file=sys.stderr)
    print(f"freed {_size(freed)}", file=sys.stderr)
    return 0


def _size(count: int) -> str:
    """Bytes for people: 517.3 MB."""
    if count < 1000:
        return f"{count} B"
    size = count / 1000
    for unit in ("kB", "MB"):
        if size < 1000:
            return f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def _serve(settings: Settings) -> None:
    import logging

    from gunicorn.app.base import BaseApplication

    from .app import configure_logging, create_app
    from .ops.logs import GUNICORN_JSON_LOGS
    from .ops.metrics import worker_exited
    from .serve.multiproc import remove_created_dirs
    from .serve.worker import SocketTimeouts, connection_limit, raise_open_files_limit

    timeouts = SocketTimeouts(header_timeout=settings.header_timeout, body_timeout=settings.body_timeout,
                              idle_timeout=settings.idle_timeout, write_timeout=settings.write_timeout)

    open_files = raise_open_files_limit()  # before the fork: every worker inherits it
    connections = connection_limit(settings.worker_threads * 2, open_files.after)

    def post_fork(_arbiter: Any, worker: Any) -> None:
        worker.timeouts = timeouts

    class _Gunicorn(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            options = {
                "bind": f"{settings.host}:{settings.port}",
                "workers": settings.workers,
                "worker_class": "maas_server.serve.worker.MaasWorker",
                "threads": settings.worker_threads,
                # Connections beyond the threads wait idle (keep-alive) in the worker's poller; never
                # so many that the worker runs out of descriptors for its own files.
                "worker_connections": connections,
                "timeout": settings.timeout,
                "graceful_timeout": settings.graceful_timeout,
                "loglevel": settings.log_level,
                "accesslog": None,  # maas.access logs each request as JSON (api/accounting.py)
                "certfile": settings.certfile and str(settings.certfile),
                "keyfile": settings.keyfile and str(settings.keyfile),
                "child_exit": lambda _arbiter, worker: worker_exited(worker.pid),
                "on_exit": lambda _arbiter: remove_created_dirs(),
                "post_worker_init": _drain_on_sigterm,
                "post_fork": post_fork,
            }
            if settings.log_format == "json":  # gunicorn's own lines as JSON too
                options["logconfig_dict"] = GUNICORN_JSON_LOGS
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            # Runs in each worker after the fork: models load there, never in the master. The
            # settings were read once, in the master; each worker inherits the object with the fork.
            configure_logging(settings)
            logging.getLogger("maas.server").info(
                "open files: soft limit %d (was %d, hard %s); up to %d connections per worker",
                open_files.after, open_files.before, open_files.hard, connections)
            return create_app(settings)

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
        begin_drain(worker.wsgi.app)  # the Flask app inside MaasWorker's ClosesOnUnreadBody
        if callable(gunicorn_handler):
            gunicorn_handler(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
