"""What `maas-server serve` checks and prepares before gunicorn forks, and the flags it takes for accounts,
logs and TLS."""

from __future__ import annotations

import argparse

from ..accounts.keys import count_keys
from ..accounts.settings import AUTH_MODES, AccountSettings
from ..accounts.store import Store, StoreUnavailable
from ..settings import Settings

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


def add_serve_options(serve: argparse.ArgumentParser) -> None:
    """The flags `maas-server serve` takes for accounts, logs and TLS (none given: None, so the
    variable, the file or the default applies)."""
    serve.add_argument("--data-dir", help="folder of the SQLite store (MAAS_DATA_DIR; default: the per-user data "
                                          "folder, ~/.local/share/maas on Linux)")
    serve.add_argument("--auth", choices=AUTH_MODES,
                       help="who may call /v1 without a key (MAAS_AUTH): auto (default: loopback clients until the "
                            "first key is created, nobody after), keys (nobody), loopback, open (anyone)")
    serve.add_argument("--allow-anonymous", action=argparse.BooleanOptionalAction,
                       help="auto mode: serve /v1 without keys to any client until the first key is created, "
                            "on a non-loopback address too (MAAS_ALLOW_ANONYMOUS=1)")
    serve.add_argument("--log-content", action=argparse.BooleanOptionalAction,
                       help="DEBUG ONLY: write request bodies (prompts) into the request log (MAAS_LOG_CONTENT=1)")
    serve.add_argument("--certfile", help="TLS certificate (PEM); with --keyfile the server speaks HTTPS "
                                          "(MAAS_CERTFILE)")
    serve.add_argument("--keyfile", help="TLS private key (PEM) (MAAS_KEYFILE)")


def prepare_serve(settings: Settings) -> str | None:
    """Before gunicorn forks: the store created or migrated, a fresh Prometheus folder. Returns why
    serving is refused, if it is."""
    if (settings.certfile is None) != (settings.keyfile is None):
        return "--certfile and --keyfile go together (or MAAS_CERTFILE and MAAS_KEYFILE, or both in the file)"
    from .multiproc import prepare_multiprocess_dir  # before anything imports prometheus_client

    prepare_multiprocess_dir()
    try:
        return check_serving_address(settings.host, settings.allow_anonymous, settings)
    except StoreUnavailable as exc:
        return str(exc)




def check_serving_address(host: str, allow_anonymous: bool, settings: AccountSettings) -> str | None:
    """Why serving on `host` is refused, else None: in the `auto` auth mode, before any key was
    ever created, a non-loopback address without --allow-anonymous would be open to anyone.

    The explicit modes (`keys`, `loopback`, `open`) are the operator's stated choice. Also creates or
    migrates the store, once, before any worker starts; StoreUnavailable when it cannot be used
    (read-only, damaged, unreachable...).
    """
    store = Store.open(settings.url)
    try:
        keys = count_keys(store)
    finally:
        store.dispose()  # no pooled connection may cross gunicorn's fork
    if settings.auth != "auto" or keys or allow_anonymous or host in LOOPBACK_HOSTS:
        return None
    return (f"refusing to serve on {host} without API keys: anyone who can reach it could use it. "
            f"Create one with `maas-server keys create --name NAME`, bind 127.0.0.1, pass --auth keys, "
            f"or pass --allow-anonymous (or --auth open)")
