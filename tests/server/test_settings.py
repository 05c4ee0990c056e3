"""The one settings object, field by field: a flag beats its MAAS_* variable, which beats the config
file, which beats the default; and a setting is refused in the layers it may not come from.

Settings are read the way `maas-server serve` reads them (its flags, parsed by its own parser), and
taken from what serve hands on; gunicorn and the store checks are left out.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import maas_server
from maas_server import cli
from maas_server.config import ConfigError, read_config_file
from maas_server.serve import options as serve_options
from maas_server.settings import NOT_IN_FILE, Settings, load_settings

LAYERS = ("flag", "env", "file", "default")  # highest first


@dataclass(frozen=True)
class Layers:
    """A setting, and two values for it: `top` goes in the layer under test, `lower` in each layer below."""

    name: str
    top: Any
    lower: Any
    flag: str | None = None  # its `serve` flag, if it has one
    in_file: bool = True  # whether the config file may hold it

    def __str__(self) -> str:
        return self.name


SETTINGS = [
    # where and how gunicorn serves
    Layers("host", "10.0.0.1", "10.0.0.2", "--host"),
    Layers("port", 9001, 9002, "--port"),
    Layers("workers", 3, 2, "--workers"),
    Layers("threads", 70, 50, "--threads"),
    Layers("timeout", 11, 12, "--timeout"),
    Layers("graceful_timeout", 21, 22, "--graceful-timeout"),
    Layers("header_timeout", 1.5, 2.5, "--header-timeout"),
    Layers("body_timeout", 3.5, 4.5, "--body-timeout"),
    Layers("idle_timeout", 5.5, 6.5, "--idle-timeout"),
    Layers("write_timeout", 7.5, 8.5, "--write-timeout"),
    Layers("certfile", Path("/tls/a.pem"), Path("/tls/b.pem"), "--certfile"),
    Layers("keyfile", Path("/tls/a.key"), Path("/tls/b.key"), "--keyfile"),
    # logs
    Layers("log_level", "debug", "error", "--log-level"),
    Layers("log_format", "text", "json"),
    Layers("log_content", True, False, "--log-content"),
    # the browser console
    Layers("console_enabled", False, True),
    # accounts; the URLs can carry a password and the token is a secret: never in the file
    Layers("data_dir", Path("/srv/a"), Path("/srv/b"), "--data-dir"),
    Layers("database_url", "postgresql+psycopg://a@db/maas", "postgresql+psycopg://b@db/maas", in_file=False),
    Layers("redis_url", "redis://a:6379/0", "redis://b:6379/0", in_file=False),
    Layers("metrics_token", "token-a", "token-b", in_file=False),
    Layers("auth", "open", "keys", "--auth"),
    Layers("allow_anonymous", True, False, "--allow-anonymous"),
    Layers("auth_cache_seconds", 1.5, 2.5),
    Layers("cors_origins", ("https://a.example",), ("https://b.example", "https://c.example")),
    Layers("allowed_hosts", ("a.example",), ("b.example", "*.c.example")),
    Layers("create_store", False, True),
    Layers("usage_retention_days", 30.0, 7.0),
    # models and limits
    Layers("device", "cpu", "cuda:1"),
    Layers("cache_dir", Path("/cache/a"), Path("/cache/b")),
    Layers("max_body_bytes", 1000, 2000),
    Layers("max_inputs", 10, 20),
    Layers("max_explain_inputs", 2, 3),
    Layers("max_tokens", 10, 20),
    Layers("max_n", 2, 3),
    Layers("max_request_tokens", 1000, 2000),
    Layers("memory_budget_mb", 1000, 2000),
    Layers("max_request_timeout_s", 30.0, 60.0),
    Layers("max_image_bytes", 1000, 2000),
    Layers("max_image_pixels", 1000, 2000),
    Layers("max_request_pixels", 300_000_000, 400_000_000),
    Layers("max_concurrent_requests", 10, 20),
    Layers("image_max_side", 64, 128),
    Layers("max_audio_bytes", 1000, 2000),
    Layers("max_audio_seconds", 60.0, 90.0),
    Layers("max_audio_samples", 1000, 2000),
    Layers("max_entity_characters", 1000, 2000),
    Layers("max_schema_depth", 8, 16),
    Layers("max_schema_properties", 10, 20),
    Layers("max_schema_enum", 10, 20),
    Layers("max_schema_pattern", 10, 20),
    # models on Ray (docs/scaling.md)
    Layers("ray_address", "auto", "10.0.0.9:6379", "--ray-address"),
    Layers("ray_app", "maas-a", "maas-b"),
    Layers("ray_redeploy", True, False, "--ray-redeploy"),
]


@pytest.fixture(autouse=True)
def _no_maas_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.upper().startswith("MAAS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))  # serve sets it; restored after


def _read(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings `maas-server serve ARGV` reads (before it turns create_store off for its workers)."""
    read: list[Settings] = []
    monkeypatch.setattr(serve_options, "prepare_serve", lambda settings: read.append(settings))
    monkeypatch.setattr(cli, "_serve", lambda settings: None)
    assert cli.main(["serve", *argv]) == 0
    return read[0]


def _config(path: Path, **server: Any) -> Path:
    """A config file with these [server] settings and one model."""
    lines = ["[server]", *(f"{key} = {_toml(value)}" for key, value in server.items()),
             "[[models]]", 'name = "m"', 'task = "embeddings"', 'source = "unused"']
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(value: Any) -> str:
    # JSON's strings, numbers, booleans and arrays of strings are TOML too.
    return json.dumps(list(value) if isinstance(value, tuple) else str(value) if isinstance(value, Path) else value)


def _text(value: Any) -> str:
    """A value as a flag or a MAAS_* variable spells it."""
    if isinstance(value, bool):
        return "1" if value else "0"
    return ",".join(value) if isinstance(value, tuple) else str(value)


def _flag(setting: Layers, value: Any) -> list[str]:
    assert setting.flag
    if isinstance(value, bool):
        return [setting.flag if value else f"--no-{setting.flag[2:]}"]
    return [setting.flag, _text(value)]


def _default(name: str) -> Any:
    return Settings.model_fields[name].get_default(call_default_factory=True)


def _cases() -> list[Any]:
    return [pytest.param(s, top, id=f"{s.name}-{top}") for s in SETTINGS for top in LAYERS
            if not (top == "flag" and s.flag is None) and not (top == "file" and not s.in_file)]


@pytest.mark.parametrize("setting, top", _cases())
def test_a_setting_comes_from_the_highest_layer_that_holds_it(setting: Layers, top: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    assert setting.top not in (setting.lower, _default(setting.name))  # else the test could not tell layers apart
    given = {layer: setting.top if layer == top else setting.lower for layer in LAYERS[LAYERS.index(top):-1]}
    argv = _flag(setting, given["flag"]) if "flag" in given else []
    if "env" in given:
        monkeypatch.setenv(f"MAAS_{setting.name.upper()}", _text(given["env"]))
    in_file = {setting.name: given["file"]} if "file" in given and setting.in_file else {}
    settings = _read(["--config", str(_config(tmp_path / "c.toml", **in_file)), *argv], monkeypatch)
    assert getattr(settings, setting.name) == (_default(setting.name) if top == "default" else setting.top)


def test_every_setting_has_its_precedence_tested() -> None:
    # `config` and `models` have tests of their own below.
    assert sorted([s.name for s in SETTINGS] + ["config", "models"]) == sorted(Settings.model_fields)


def test_the_config_file_is_the_flags_then_the_variables_then_the_packaged_one(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    by_flag, by_variable = _config(tmp_path / "a.toml", port=9001), _config(tmp_path / "b.toml", port=9002)
    monkeypatch.setenv("MAAS_CONFIG", str(by_variable))
    assert _read(["--config", str(by_flag)], monkeypatch).port == 9001
    assert _read([], monkeypatch).port == 9002
    monkeypatch.delenv("MAAS_CONFIG")
    packaged = _read([], monkeypatch)
    assert packaged.config is None and packaged.port == 8000
    assert [m.name for m in packaged.models] == [m["name"] for m in read_config_file()["models"]]


@pytest.mark.parametrize("name", sorted(NOT_IN_FILE))
def test_the_file_refuses_secrets_and_a_file_path(name: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serve", "--config", str(_config(tmp_path / "c.toml", **{name: "x"}))]) == 2
    err = capsys.readouterr().err
    assert f"{name} cannot be set in the config file" in err and f"MAAS_{name.upper()}" in err  # says where instead


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.flag is None], ids=str)
def test_settings_without_a_flag_are_refused_on_the_command_line(setting: Layers) -> None:
    # Secrets on a command line would show in `ps`; limits and model settings belong in the file.
    with pytest.raises(SystemExit):
        cli.main(["serve", f"--{setting.name.replace('_', '-')}", _text(setting.top)])


def test_models_come_only_from_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAAS_MODELS", '[{"name": "from-env", "task": "embeddings", "source": "x"}]')
    assert [m.name for m in _read(["--config", str(_config(tmp_path / "c.toml"))], monkeypatch).models] == ["m"]
    with pytest.raises(SystemExit):
        cli.main(["serve", "--models", "x"])


def test_models_without_a_device_get_the_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAAS_DEVICE", "cpu")
    models = [{"name": "a", "task": "embeddings", "source": "x"},
              {"name": "b", "task": "embeddings", "source": "x", "device": "cuda:1"}]
    assert [m.device for m in load_settings(file={"models": models}).models] == ["cpu", "cuda:1"]


def test_variables_and_flags_are_read_as_operators_write_them(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"AUTH": "Keys", "LOG_LEVEL": "WARNING", "CORS_ORIGINS": " https://a.example , https://b.example",
                        "ALLOW_ANONYMOUS": "yes", "LOG_CONTENT": ""}.items():
        monkeypatch.setenv(f"MAAS_{name}", value)
    settings = _read(["--no-allow-anonymous", "--drain-seconds", "5"], monkeypatch)
    assert (settings.auth, settings.log_level) == ("keys", "warning")
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert settings.allow_anonymous is False  # the flag's --no- form beats the variable
    assert settings.log_content is False  # an empty variable is no setting
    assert settings.graceful_timeout == 5  # --drain-seconds is --graceful-timeout


@pytest.mark.parametrize("days", ["0", "-1", "inf", "nan"])
def test_usage_retention_is_a_positive_number_of_days(days: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAAS_USAGE_RETENTION_DAYS", days)
    with pytest.raises(ConfigError, match="usage_retention_days"):
        load_settings()
    monkeypatch.setenv("MAAS_USAGE_RETENTION_DAYS", "0.5")
    assert load_settings().usage_retention_days == 0.5


def test_a_bad_value_in_any_layer_stops_serve_naming_the_setting(monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MAAS_PORT", "eighty")
    assert cli.main(["serve"]) == 2
    assert "port: " in capsys.readouterr().err


def test_serve_hands_its_settings_to_the_workers_not_to_the_environment(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[Settings] = []
    monkeypatch.setattr(cli, "_serve", served.append)
    environ = dict(os.environ)
    data = tmp_path / "data"
    assert cli.main(["serve", "--data-dir", str(data), "--auth", "open", "--log-content", "--port", "9009"]) == 0
    assert dict(os.environ) == environ  # PROMETHEUS_MULTIPROC_DIR was set already: nothing else is written
    (workers,) = served
    assert (workers.data_dir, workers.auth, workers.log_content, workers.port) == (data, "open", True, 9009)
    assert (data / "maas.db").exists()  # serve made the store before forking...
    assert workers.create_store is False  # ...so a worker that finds it gone answers 503, never makes an empty one


def test_no_other_module_reads_the_environment() -> None:
    # pydantic-settings reads the MAAS_* variables (maas_server/settings.py). The other uses:
    # prometheus_client's own PROMETHEUS_MULTIPROC_DIR, the environment testing.py starts a server in,
    # and Ray's own RAY_AUTH_MODE, which serve hands its workers for a Ray instance it started.
    package = Path(maas_server.__file__).parent
    readers = {path.relative_to(package).as_posix() for path in package.rglob("*.py")
               if re.search(r"os\.environ|getenv", path.read_text())}
    assert readers == {"serve/multiproc.py", "ops/metrics.py", "serve/ray_start.py", "testing.py"}


def test_secrets_stay_out_of_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAAS_DATABASE_URL", "postgresql+psycopg://maas:pw-db@db/maas")
    monkeypatch.setenv("MAAS_REDIS_URL", "redis://:pw-redis@redis:6379/0")
    monkeypatch.setenv("MAAS_METRICS_TOKEN", "pw-metrics")
    settings = load_settings()
    assert settings.metrics_token == "pw-metrics" and "pw-" not in repr(settings)
