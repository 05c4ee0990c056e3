"""Where accounts live and how they are enforced: the accounts' part of the server settings.

``maas_server.settings.Settings`` inherits these fields and reads them with the others (flags,
then ``MAAS_*`` variables, then the config file); accounting is handed that one object. The
database URL, the Redis URL and the metrics token are never read from the config file: the URLs
may carry a password and the token is one, and config files get copied and committed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import NoDecode

AuthMode = Literal["auto", "keys", "loopback", "open"]
AUTH_MODES: tuple[str, ...] = get_args(AuthMode)
_HOST_NAME = re.compile(r"(\*\.)?[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?")  # maas.example.com, *.example.com


def default_data_dir() -> Path:
    """The per-user data folder (``~/.local/share/maas`` on Linux, ``$XDG_DATA_HOME/maas`` when set).

    Never the current folder: a key created from one folder must reach the server started from another.
    """
    return Path(platformdirs.user_data_dir("maas", appauthor=False))


class AccountSettings(BaseModel):
    """Settings for keys, limits, usage, metrics and request logs (see docs/operations.md)."""

    model_config = ConfigDict(frozen=True)

    data_dir: Path = Field(default_factory=default_data_dir, description="folder of the SQLite store (default: "
                                                                        "the per-user data folder)")
    # repr=False on the three that can hold a password or are one: settings may be printed or logged.
    database_url: str | None = Field(None, repr=False, description="SQLAlchemy URL; default: SQLite file in data_dir")
    redis_url: str | None = Field(None, repr=False, description="rate limits shared by several servers when set")
    auth: AuthMode = Field("auto", description="who may call /v1 without a key (docs/operations.md, Auth modes)")
    allow_anonymous: bool = Field(False, description="auto mode: any client, not only loopback, before the first key")
    metrics_token: str | None = Field(None, repr=False, description="bearer token /metrics requires when set")
    auth_cache_seconds: float = Field(5.0, ge=0, description="how long a key lookup is reused (revocation delay)")
    log_content: bool = Field(False, description="debug only: request bodies appear in the request log")
    usage_retention_days: float | None = Field(
        None, gt=0, allow_inf_nan=False, description="usage rows older than this many days are deleted (checked "
                                                     "hourly); default: kept forever. Audit rows are always kept")
    # NoDecode: a variable spells the list as "a,b" (split below), not as JSON.
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="origins browsers may call from; empty: CORS off")
    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="host names a call without a key may name in its Host header besides localhost, IP "
                        "addresses and the server's own names (a DNS rebinding guard): maas.example.com, "
                        "*.example.com for its subdomains, or * for any")
    create_store: bool = Field(True, description="create a missing store when the server starts; `serve` creates "
                                                 "it before forking and turns this off for its workers, so a "
                                                 "worker never starts on a new, empty (keyless, open) store")

    @field_validator("auth", mode="before")
    @classmethod
    def _mode_in_any_case(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("cors_origins", "allowed_hosts", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return tuple(o.strip() for o in value.split(",") if o.strip()) if isinstance(value, str) else value

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, hosts: tuple[str, ...]) -> tuple[str, ...]:
        names = tuple(h.strip().lower().rstrip(".") for h in hosts)
        wrong = [h for h in names if h != "*" and not _HOST_NAME.fullmatch(h)]
        if wrong:
            raise ValueError(f"{', '.join(map(repr, wrong))}: give host names alone (maas.example.com, "
                             "*.example.com, or * for any), without a scheme, port or path")
        return names

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the store."""
        return self.database_url or f"sqlite:///{self.data_dir / 'maas.db'}"
