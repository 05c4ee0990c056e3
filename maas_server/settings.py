"""The server's settings: one object, read once, from flags, then ``MAAS_*`` variables, then the file, then defaults.

`maas-server serve` reads them before gunicorn forks and hands that object to each worker's
``create_app``; no other code reads the environment for a server setting. pydantic-settings does
the reading and the precedence; this module says which layers may hold which setting. The table of
settings (flag, variable, file key, default) is in docs/server.md, "Settings".
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from .accounts.settings import AccountSettings
from .config import ConfigError, ServerConfig, file_settings, read_config_file

RESERVE_THREADS = 64  # beyond max_concurrent_requests: /health, /ready, /metrics and clients still sending

FILE_ONLY = frozenset({"models"})  # a list of tables: no flag or variable spells it
NOT_IN_FILE = {  # setting -> why, and where it goes instead
    "config": "a config file cannot name another; pass --config or set MAAS_CONFIG",
    "database_url": "it can carry a password and config files get copied: set MAAS_DATABASE_URL",
    "redis_url": "it can carry a password and config files get copied: set MAAS_REDIS_URL",
    "metrics_token": "it is a secret and config files get copied: set MAAS_METRICS_TOKEN",
}

# The file's content when load_settings is handed it instead of a path (tests and tools). A context
# variable, as pydantic-settings builds the sources from the class, and calls may run in threads.
_given_file: ContextVar[dict[str, Any] | None] = ContextVar("given_file", default=None)

LogLevel = Literal["debug", "info", "warning", "error", "critical"]


class Settings(ServerConfig, AccountSettings, BaseSettings):
    """Everything the server is told: its address, its gunicorn workers, logs, accounts, limits and models.

    Build it with `load_settings`. It is a ServerConfig (what the runtime and the API read) and an
    AccountSettings (what accounting reads), so each part of the server is handed this one object.
    """

    model_config = SettingsConfigDict(env_prefix="MAAS_", env_ignore_empty=True, extra="forbid", frozen=True)

    config: Path | None = Field(None, description="the TOML config file (default: the packaged default config)")
    host: str = Field("127.0.0.1", min_length=1, description="address to listen on")
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1, description="gunicorn worker processes (each loads every model)")
    threads: int | None = Field(None, ge=1, description="request threads per worker (open streams hold one); "
                                                        f"default: max_concurrent_requests + {RESERVE_THREADS}")
    timeout: int = Field(120, ge=1, description="gunicorn worker heartbeat timeout in seconds")
    graceful_timeout: int = Field(30, ge=0, description="drain window: on SIGTERM, seconds admitted requests "
                                                        "(streams too) get to finish")
    header_timeout: float = Field(10.0, gt=0, description="seconds a client has to send the request line and "
                                                          "headers (then 408)")
    body_timeout: float = Field(60.0, gt=0, description="seconds a client has to send the request body (then 408)")
    idle_timeout: float = Field(10.0, gt=0, description="longest silence while a client sends its request (then 408)")
    write_timeout: float = Field(30.0, gt=0, description="seconds a client may stop reading its response before "
                                                         "it is cut off")
    certfile: Path | None = Field(None, description="TLS certificate (PEM); with keyfile the server speaks HTTPS")
    keyfile: Path | None = Field(None, description="TLS private key (PEM)")
    log_level: LogLevel = "info"
    log_format: Literal["json", "text"] = Field("json", description="json: one object per line; text: plain lines")
    console_enabled: bool = Field(True, description="serve the browser console at /console (and / and /docs); "
                                                  "off: those paths answer 404 like any unknown route")

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _log_names_in_any_case(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def worker_threads(self) -> int:
        """Request threads per worker: more than the admission bound, so a 503 comes before the pool runs out."""
        return self.threads or self.max_concurrent_requests + RESERVE_THREADS

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Highest first; pydantic applies the defaults below the last. No .env file, no secrets folder.
        return init_settings, _Environment(settings_cls), ConfigFile(settings_cls)


class _Environment(EnvSettingsSource):
    """``MAAS_<NAME>`` for every setting but those only the file can hold."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field_name in FILE_ONLY:
            return None, field_name, False
        return super().get_field_value(field, field_name)


class ConfigFile(PydanticBaseSettingsSource):
    """The TOML file the `config` setting names (by flag or MAAS_CONFIG), else the packaged default config."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads the whole file at once

    def __call__(self) -> dict[str, Any]:
        # current_state holds what the layers above gave, the config file's path included.
        given = _given_file.get()
        values = read_config_file(self.current_state.get("config")) if given is None else given
        refused = [f"{name} cannot be set in the config file: {why}" for name, why in NOT_IN_FILE.items()
                   if name in values]
        if refused:
            raise ConfigError("\n".join(refused))
        return values


def load_settings(flags: Mapping[str, Any] | None = None, *, file: dict[str, Any] | None = None) -> Settings:
    """The server's settings: `flags` > ``MAAS_*`` environment > the config file > defaults.

    `file`, shaped like the TOML file (a "server" table and "models"), stands in for the file the
    `config` setting names. Raises ConfigError saying which setting is wrong.
    """
    token = _given_file.set(None if file is None else file_settings(file))
    try:
        return Settings(**(flags or {}))
    except ValidationError as exc:
        raise ConfigError(_explain(exc)) from None
    finally:
        _given_file.reset(token)


def flags_from(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line: a flag's dest is its setting's name; one not given is None."""
    return {name: value for name in Settings.model_fields if (value := getattr(args, name, None)) is not None}


def _explain(exc: ValidationError) -> str:
    lines = ["invalid configuration:"]
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        lines.append(f"  {where}: {err['msg']}")
    return "\n".join(lines)
