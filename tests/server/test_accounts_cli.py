"""`maas-server keys ...`, `maas-server usage` and the checks `serve` makes before starting."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from maas_server.accounts import AccountSettings, Authenticator, Store, UsageRecord, record_usage
from maas_server.cli import main
from maas_server.serve.options import check_serving_address


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MAAS_DATA_DIR", str(tmp_path / "unused"))  # --data-dir must win over it
    # serve writes PROMETHEUS_MULTIPROC_DIR for gunicorn's workers: restore it after. (setenv, not
    # delenv: monkeypatch only restores a variable that existed or that it set itself.)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))
    monkeypatch.delenv("MAAS_DATABASE_URL", raising=False)
    return str(tmp_path / "data")


def _store(data_dir: str) -> Store:
    return Store(AccountSettings(data_dir=Path(data_dir)).url)


def test_keys_create_list_revoke(data_dir: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "create", "--data-dir", data_dir, "--name", "team-a", "--rpm", "60", "--tpm", "1000",
                 "--expires", "2999-01-01"]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("maas_")
    assert Authenticator(_store(data_dir), ttl=0).authenticate(key).name == "team-a"
    assert main(["keys", "list", "--data-dir", data_dir]) == 0
    listing = capsys.readouterr().out
    assert "team-a" in listing and "active" in listing and "2999-01-01" in listing and key not in listing
    assert main(["keys", "revoke", "--data-dir", data_dir, "team-a"]) == 0
    assert main(["keys", "list", "--data-dir", data_dir]) == 0
    assert "revoked" in capsys.readouterr().out


def test_keys_redact_input_is_set_at_creation_and_changed_by_update(data_dir: str,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "create", "--data-dir", data_dir, "--name", "private", "--redact-input"]) == 0
    assert main(["keys", "create", "--data-dir", data_dir, "--name", "plain"]) == 0
    private, plain = capsys.readouterr().out.split()
    auth = Authenticator(_store(data_dir), ttl=0)
    assert auth.authenticate(private).redact_input and not auth.authenticate(plain).redact_input
    assert main(["keys", "update", "--data-dir", data_dir, "private", "--no-redact-input"]) == 0
    assert main(["keys", "update", "--data-dir", data_dir, "plain", "--redact-input"]) == 0
    assert not auth.authenticate(private).redact_input and auth.authenticate(plain).redact_input
    assert main(["keys", "update", "--data-dir", data_dir, "plain"]) == 2  # nothing to change
    assert main(["keys", "update", "--data-dir", data_dir, "nobody", "--redact-input"]) == 2
    assert "nothing to change" in capsys.readouterr().err


def test_keys_create_refuses_bad_input_with_status_2(data_dir: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "create", "--data-dir", data_dir, "--name", "x", "--expires", "2001-01-01"]) == 2
    assert "in the past" in capsys.readouterr().err
    assert main(["keys", "create", "--data-dir", data_dir, "--name", "x", "--expires", "soon"]) == 2
    assert "not a date" in capsys.readouterr().err
    assert main(["keys", "create", "--data-dir", data_dir, "--name", "x", "--rpm", "0"]) == 2
    assert main(["keys", "revoke", "--data-dir", data_dir, "nobody"]) == 2
    assert "no active key" in capsys.readouterr().err


def test_usage_prints_totals_per_key_and_model(data_dir: str, capsys: pytest.CaptureFixture[str]) -> None:
    store = _store(data_dir)
    for key, model, tokens, at in (("a", "m1", 3, 100.0), ("a", "m1", 4, 200.0), ("b", "m2", 5, 300.0)):
        record_usage(store, UsageRecord(at=at, route="/v1/embeddings", status=200, latency_ms=1.0, key_id=1,
                                        key_name=key, model=model, prompt_tokens=tokens))
    assert main(["usage", "--data-dir", data_dir]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:5] == ["a", "m1", "2", "0", "7"] and lines[2].split()[:5] == ["b", "m2", "1", "0", "5"]
    assert main(["usage", "--data-dir", data_dir, "--key", "a", "--since", "150"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[1].split()[:5] == ["a", "m1", "1", "0", "4"]


def test_serve_refuses_a_public_address_without_keys(data_dir: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--data-dir", data_dir, "--host", "0.0.0.0"]) == 2
    assert "--allow-anonymous" in capsys.readouterr().err
    assert Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).is_dir()  # prepared before the refusal, for the workers


def test_public_address_is_allowed_with_keys_or_explicit_anonymous(data_dir: str) -> None:
    settings = AccountSettings(data_dir=Path(data_dir))
    assert check_serving_address("127.0.0.1", False, settings) is None
    assert check_serving_address("0.0.0.0", True, settings) is None
    assert check_serving_address("0.0.0.0", False, settings) is not None
    assert main(["keys", "create", "--data-dir", data_dir, "--name", "k"]) == 0
    assert check_serving_address("0.0.0.0", False, settings) is None


def test_certfile_needs_keyfile(data_dir: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--data-dir", data_dir, "--certfile", "cert.pem"]) == 2
    assert "--keyfile" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["keys", "list"], ["keys", "revoke", "someone"], ["usage"]])
def test_commands_that_read_a_missing_store_say_so_and_create_nothing(command: list[str], data_dir: str,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*command, "--data-dir", data_dir]) == 2
    err = capsys.readouterr().err
    assert f"no store at {Path(data_dir) / 'maas.db'}; nothing was created" in err and "keys create" in err
    assert not Path(data_dir).exists()


def test_every_store_command_prints_the_store_it_opened(data_dir: str, capsys: pytest.CaptureFixture[str]) -> None:
    where = f"store: {Path(data_dir) / 'maas.db'}"
    assert main(["keys", "create", "--data-dir", data_dir, "--name", "a"]) == 0
    out, err = capsys.readouterr()
    assert where in err and where not in out  # stdout is the key alone, for scripts
    for command in (["keys", "list"], ["usage"], ["keys", "revoke", "a"]):
        assert main([*command, "--data-dir", data_dir]) == 0
        assert where in capsys.readouterr().err


def test_the_default_store_is_the_same_from_any_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("MAAS_DATA_DIR")  # the session's isolation: this test wants the default
    monkeypatch.delenv("MAAS_DATABASE_URL", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))  # platformdirs' per-user data folder on Linux
    for folder in ("one", "elsewhere"):
        (tmp_path / folder).mkdir()
    monkeypatch.chdir(tmp_path / "one")
    assert main(["keys", "create", "--name", "from-one-folder"]) == 0
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert main(["keys", "list"]) == 0
    out, err = capsys.readouterr()
    assert "from-one-folder" in out and f"store: {tmp_path / 'xdg' / 'maas' / 'maas.db'}" in err
    assert not (tmp_path / "one" / ".maas").exists() and not (tmp_path / "elsewhere" / ".maas").exists()


def test_serve_logs_the_store_it_uses(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from flask import Flask

    from maas_server.api import accounting

    app = Flask("t")
    app.extensions["maas"] = type("State", (), {"readiness_checks": []})()
    with caplog.at_level("INFO", logger="maas.accounts"):
        accounting.init_app(app, AccountSettings(data_dir=tmp_path))
    assert f"keys and usage: store {tmp_path / 'maas.db'}" in caplog.text
