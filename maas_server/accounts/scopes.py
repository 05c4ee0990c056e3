"""A key's scopes as an operator writes them, checked against the server's configuration.

Scopes name configured models: an alias is stored as the model it stands for, so a key scoped to
a model may call it by any of its names, and a name the configuration does not know is refused.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..config import TASKS, ServerConfig
from .keys import KeyStoreError


def split_list(text: str | None) -> list[str] | None:
    """`a,b` -> ["a", "b"]; None stays None (every one)."""
    return None if text is None else [part.strip() for part in text.split(",") if part.strip()]


def check_scopes(config: ServerConfig, models: Iterable[str] | None,
                 tasks: Iterable[str] | None) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    """(models, tasks) to store: aliases resolved to their model; KeyStoreError for unknown names or an
    empty list (which would allow nothing: omit the scope to allow everything)."""
    return _models(config, models), _tasks(tasks)


def _models(config: ServerConfig, names: Iterable[str] | None) -> tuple[str, ...] | None:
    if names is None:
        return None
    by_name = {name: m.name for m in config.models for name in (m.name, *m.aliases)}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise KeyStoreError(f"unknown model(s) {', '.join(map(repr, unknown))}; configured: "
                            f"{', '.join(sorted(by_name)) or 'none'}")
    resolved = tuple(sorted({by_name[name] for name in names}))
    if not resolved:
        raise KeyStoreError("models is empty: name at least one model (omit it for every model)")
    return resolved


def _tasks(names: Iterable[str] | None) -> tuple[str, ...] | None:
    if names is None:
        return None
    resolved = tuple(sorted(set(names)))
    unknown = [name for name in resolved if name not in TASKS]
    if unknown:
        raise KeyStoreError(f"unknown task(s) {', '.join(map(repr, unknown))}; tasks: {', '.join(TASKS)}")
    if not resolved:
        raise KeyStoreError("tasks is empty: name at least one task (omit it for every task)")
    return resolved
