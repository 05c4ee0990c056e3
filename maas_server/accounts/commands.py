"""`maas-server keys create|list|revoke`, `maas-server usage` and `maas-server audit`: the operator's side of
accounts.

They work on the same store the server uses, found through the same settings: ``--data-dir``
(or ``MAAS_DATA_DIR``, or ``data_dir`` in the ``--config`` file; default: the per-user data folder,
``~/.local/share/maas`` on Linux) for SQLite, ``MAAS_DATABASE_URL`` for PostgreSQL. Each prints the
store it opened; only ``keys create`` creates a missing one. Key changes made here are written to
the audit log as made by "cli", from "cli".
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ..config import ConfigError
from ..settings import Settings, flags_from, load_settings
from .audit import CLI, read_audit
from .keys import KeyStoreError, create_key, list_keys, revoke_key, update_key
from .scopes import check_scopes, split_list
from .settings import AccountSettings, default_data_dir
from .store import Store, StoreUnavailable
from .times import format_time, parse_time
from .usage import usage_summary


def store_options() -> argparse.ArgumentParser:
    """Options every command that opens the store takes (an argparse parent parser)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--config", help="the server's TOML config file, for its data_dir (MAAS_CONFIG)")
    parent.add_argument("--data-dir", help="folder of the SQLite store (MAAS_DATA_DIR; default: the per-user data "
                                           "folder, ~/.local/share/maas on Linux); MAAS_DATABASE_URL selects "
                                           "PostgreSQL instead")
    return parent


_REDACT_HELP = ("personal data (names, emails, phones, card numbers, IBANs, IPs) is removed from the text of the "
                "key's chat, completion, response and embedding requests before a model sees it; served only "
                "while a pii model is loaded (else 503)")


def add_commands(commands: Any) -> None:
    """Add `keys`, `usage` and `audit` to the `maas-server` subcommands."""
    keys = commands.add_parser("keys", help="create, list, update or revoke API keys")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a key and print it (once)", parents=[store_options()])
    create.add_argument("--name", required=True, help="who the key is for; shown in usage and logs")
    create.add_argument("--rpm", type=int, help="requests per minute (default: unlimited)")
    create.add_argument("--tpm", type=int, help="tokens (or texts/images) per minute (default: unlimited)")
    create.add_argument("--compute-per-minute", type=float, metavar="SECONDS", dest="cpm",
                        help="seconds of model compute per minute, what a call costs whatever its size "
                             "(default: unlimited)")
    create.add_argument("--expires", help="expiry date, e.g. 2027-01-31 (UTC) or 2027-01-31T12:00+01:00")
    create.add_argument("--models", metavar="A,B", dest="scope_models",
                        help="only these configured models (or their aliases); default: every model")
    create.add_argument("--tasks", metavar="A,B", dest="scope_tasks",
                        help="only models of these tasks, e.g. embeddings,text-generation; default: every task")
    create.add_argument("--admin", action="store_true", dest="admin_key",
                        help="the key may call the admin API (/v1/admin/)")
    create.add_argument("--zero-retention", action="store_true",
                        help="nothing the key's requests carry or return is logged or stored: no request body in "
                             "the log even with --log-content, and /v1/responses refuses store: true")
    create.add_argument("--redact-input", action="store_true", help=_REDACT_HELP)
    update = actions.add_parser("update", help="change a key's policies, by name or id", parents=[store_options()])
    update.add_argument("name", help="the key's name (or its id from `keys list`)")
    update.add_argument("--redact-input", action=argparse.BooleanOptionalAction, help=_REDACT_HELP)
    update.add_argument("--zero-retention", action=argparse.BooleanOptionalAction,
                        help="nothing the key's requests carry or return is logged or stored")
    actions.add_parser("list", help="list keys (never the keys themselves)", parents=[store_options()])
    revoke = actions.add_parser("revoke", help="revoke a key by name or id", parents=[store_options()])
    revoke.add_argument("name", help="the key's name (or its id from `keys list`)")
    usage = commands.add_parser("usage", help="usage per key and model", parents=[store_options()])
    usage.add_argument("--key", help="only this key name")
    usage.add_argument("--since", help="only requests since this date (YYYY-MM-DD, ISO time or unix seconds)")
    audit = commands.add_parser("audit", help="changes to keys: who, from where, what and when (newest first)",
                                parents=[store_options()])
    audit.add_argument("--since", help="only changes since this date (YYYY-MM-DD, ISO time or unix seconds)")
    audit.add_argument("--key-id", type=int, help="only changes to this key (its id from `keys list`)")
    audit.add_argument("--limit", type=int, default=100, help="at most this many changes (default 100)")


def run(args: argparse.Namespace) -> int:
    """Run `keys ...` or `usage`; 2 with a message on stderr when the operator must change something."""
    creating = args.command == "keys" and args.action == "create"
    try:
        settings = load_settings(flags_from(args))  # the server's settings find the server's store
        missing = _missing_store(settings)
        if missing and not creating:  # only `keys create` makes a store: any other command here is looking for one
            raise StoreUnavailable(f"no store at {missing}; nothing was created. The server keeps it in its "
                                   f"data_dir (--data-dir or MAAS_DATA_DIR; default {default_data_dir()}); "
                                   f"`maas-server keys create` makes one")
        store = Store.open(settings.url, create=creating)
    except (ConfigError, StoreUnavailable) as exc:
        print(f"maas-server: {exc}", file=sys.stderr)
        return 2
    print(f"store: {store.location}", file=sys.stderr)  # stderr: `keys create`'s stdout is the key alone
    try:
        if args.command == "usage":
            return _usage(store, args)
        if args.command == "audit":
            return _audit(store, args)
        if args.action == "create":
            return _create(store, args, settings)
        return {"list": _list, "revoke": _revoke, "update": _update}[args.action](store, args)
    except (KeyStoreError, StoreUnavailable, ValueError) as exc:
        print(f"maas-server: {exc}", file=sys.stderr)
        return 2
    finally:
        store.dispose()


def _missing_store(settings: AccountSettings) -> Path | None:
    """The SQLite file the settings name, when it does not exist (a PostgreSQL store is never "missing")."""
    path = settings.data_dir / "maas.db"
    return path if settings.database_url is None and not path.exists() else None


def _create(store: Store, args: argparse.Namespace, settings: Settings) -> int:
    expires = parse_time(args.expires) if args.expires else None
    if expires is not None and expires <= time.time():
        raise KeyStoreError(f"--expires {args.expires} is in the past")
    models, tasks = check_scopes(settings, split_list(args.scope_models), split_list(args.scope_tasks))
    key, record = create_key(store, args.name, rpm=args.rpm, tpm=args.tpm, cpm=args.cpm, expires_at=expires,
                             models=models, tasks=tasks, admin=args.admin_key,
                             zero_retention=args.zero_retention, redact_input=args.redact_input, by=CLI)
    print(key)
    print(f"created key {record.name!r} (id {record.id}); it is shown only now: store it safely", file=sys.stderr)
    return 0


def _list(store: Store, args: argparse.Namespace) -> int:
    now = time.time()
    rows: list[tuple[str, ...]] = [("id", "name", "prefix", "rpm", "tpm", "compute/min", "models", "tasks", "admin",
                                    "zero_retention", "redact_input", "created", "expires", "status")]
    for k in list_keys(store):
        status = "revoked" if k.revoked_at else "expired" if not k.active(now) else "active"
        rows.append((str(k.id), k.name, k.prefix + "...", str(k.rpm or "-"), str(k.tpm or "-"),
                     f"{k.cpm:g}s" if k.cpm else "-", ",".join(k.models) if k.models is not None else "*",
                     ",".join(k.tasks) if k.tasks is not None else "*", "yes" if k.admin else "-",
                     "yes" if k.zero_retention else "-", "yes" if k.redact_input else "-", format_time(k.created_at),
                     format_time(k.expires_at), status))
    _table(rows)
    return 0


def _update(store: Store, args: argparse.Namespace) -> int:
    changes = {name: value for name in ("redact_input", "zero_retention") if (value := getattr(args, name)) is not None}
    if not changes:
        raise KeyStoreError("nothing to change: pass --redact-input, --no-redact-input, --zero-retention or "
                            "--no-zero-retention")
    now = time.time()
    matches = [k for k in list_keys(store) if args.name in (k.name, str(k.id)) and k.active(now)]
    if not matches:
        raise KeyStoreError(f"no active key named {args.name!r}; `maas-server keys list` shows them")
    for key in matches:
        update_key(store, key.id, changes, by=CLI)
    print(f"updated {len(matches)} key(s) named {args.name!r}; servers apply it within the auth cache time "
          f"(MAAS_AUTH_CACHE_SECONDS, default 5 s)", file=sys.stderr)
    return 0


def _revoke(store: Store, args: argparse.Namespace) -> int:
    count = revoke_key(store, args.name, by=CLI)
    print(f"revoked {count} key(s) named {args.name!r}; servers stop accepting it within the auth cache "
          f"time (MAAS_AUTH_CACHE_SECONDS, default 5 s)", file=sys.stderr)
    return 0


def _usage(store: Store, args: argparse.Namespace) -> int:
    since = parse_time(args.since) if args.since else None
    rows: list[tuple[str, ...]] = [("key", "model", "requests", "errors", "prompt_tokens", "completion_tokens",
                                    "total_tokens", "mean_latency_ms", "compute_seconds")]
    for r in usage_summary(store, key_name=args.key, since=since):
        rows.append((r["key"] or "(anonymous)", r["model"] or "-", *(str(r[c]) for c in rows[0][2:])))
    _table(rows)
    return 0


def _audit(store: Store, args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise KeyStoreError("--limit must be at least 1")
    if args.key_id is not None and not 0 < args.key_id < 2**31:
        raise KeyStoreError("--key-id is a key's id, as `maas-server keys list` shows it")
    rows: list[tuple[str, ...]] = [("at", "actor", "source", "action", "key_id", "key", "changes")]
    for r in read_audit(store, since=parse_time(args.since) if args.since else None, key_id=args.key_id,
                        limit=args.limit):
        rows.append((format_time(r["at"]), r["actor"], r["source"], r["action"], str(r["key_id"]), r["key_name"] or "-",
                     json.dumps(r["changes"], sort_keys=True)))
    _table(rows)
    return 0


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
