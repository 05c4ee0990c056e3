"""Where accounts live and how they are enforced, read from ``MAAS_*`` environment variables.

`maas-server serve` turns its flags (``--data-dir``, ``--allow-anonymous``...) into these
variables before gunicorn forks, so every worker builds the same settings after the fork.
The database URL may carry a password, which is why it is an environment variable and not a
config-file setting.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field


AuthMode = Literal["auto", "keys", "loopback", "open"]
AUTH_MODES: tuple[str, ...] = get_args(AuthMode)


class AccountSettings(BaseModel):
    """Settings for keys, limits, usage, metrics and request logs (see docs/operations.md)."""

    model_config = ConfigDict(frozen=True)

    data_dir: Path = Path(".maas")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default: SQLite file in data_dir")
    redis_url: str | None = Field(None, description="rate limits shared by several servers when set")
    auth: AuthMode = Field("auto", description="who may call /v1 without a key (docs/operations.md, Auth modes)")
    allow_anonymous: bool = Field(False, description="auto mode: any client, not only loopback, before the first key")
    metrics_token: str | None = Field(None, description="bearer token /metrics requires when set")
    auth_cache_seconds: float = Field(5.0, ge=0, description="how long a key lookup is reused (revocation delay)")
    log_content: bool = Field(False, description="debug only: request bodies appear in the request log")
    cors_origins: tuple[str, ...] = Field((), description="origins browsers may call from; empty: CORS off")
    create_store: bool = Field(True, description="create a missing store when the server starts; `serve` creates "
                                                 "it before forking and turns this off for its workers, so a "
                                                 "worker never starts on a new, empty (keyless, open) store")

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the store."""
        return self.database_url or f"sqlite:///{self.data_dir / 'maas.db'}"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> AccountSettings:
        env = os.environ if environ is None else environ
        return cls(
            data_dir=Path(env.get("MAAS_DATA_DIR") or ".maas"),
            database_url=env.get("MAAS_DATABASE_URL") or None,
            redis_url=env.get("MAAS_REDIS_URL") or None,
            auth=_auth_mode(env.get("MAAS_AUTH")),
            allow_anonymous=_flag(env.get("MAAS_ALLOW_ANONYMOUS")),
            metrics_token=env.get("MAAS_METRICS_TOKEN") or None,
            auth_cache_seconds=float(env.get("MAAS_AUTH_CACHE_SECONDS") or 5.0),
            log_content=_flag(env.get("MAAS_LOG_CONTENT")),
            cors_origins=tuple(o.strip() for o in (env.get("MAAS_CORS_ORIGINS") or "").split(",") if o.strip()),
            create_store=_flag(env.get("MAAS_CREATE_STORE") or "1"),
        )


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _auth_mode(value: str | None) -> AuthMode:
    mode = (value or "auto").strip().lower()
    if mode not in AUTH_MODES:
        raise ValueError(f"MAAS_AUTH={value!r} is not a mode; use one of: {', '.join(AUTH_MODES)}")
    return mode  # type: ignore[return-value]
