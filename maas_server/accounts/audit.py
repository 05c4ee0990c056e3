"""The audit log: who changed which key, how, when and from where. Rows are only ever added.

Each change to a key (create, update, revoke) writes its row in the same transaction as the change,
so there is no change without its row. A row holds the fields set, never a key or its hash.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from .store import Store, audit_log

CREATE, UPDATE, REVOKE = "key.create", "key.update", "key.revoke"


@dataclass(frozen=True)
class Actor:
    """Who makes a change: an admin key (its name and id, and the caller's address) or the command line."""

    name: str
    source: str  # the caller's address, or "cli"
    key_id: int | None = None


CLI = Actor(name="cli", source="cli")


def write_audit(conn: Connection, by: Actor, action: str, key_id: int, key_name: str, changes: dict[str, Any],
                at: float) -> None:
    """Add one row, inside the transaction that makes the change."""
    conn.execute(audit_log.insert().values(at=at, actor=by.name, actor_key_id=by.key_id, source=by.source,
                                           action=action, target_key_id=key_id, target_key_name=key_name,
                                           changes=json.dumps(changes, sort_keys=True)))


def read_audit(store: Store, *, since: float | None = None, until: float | None = None, key_id: int | None = None,
               limit: int = 100) -> list[dict[str, Any]]:
    """Rows newest first, at most `limit`: `since` inclusive, `until` exclusive, `key_id` the key changed."""
    query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if since is not None:
        query = query.where(audit_log.c.at >= since)
    if until is not None:
        query = query.where(audit_log.c.at < until)
    if key_id is not None:
        query = query.where(audit_log.c.target_key_id == key_id)
    with store.begin() as conn:
        rows = conn.execute(query).all()
    return [{"id": r.id, "at": r.at, "actor": r.actor, "actor_key_id": r.actor_key_id, "source": r.source,
             "action": r.action, "key_id": r.target_key_id, "key_name": r.target_key_name,
             "changes": json.loads(r.changes)} for r in rows]
