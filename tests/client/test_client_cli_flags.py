"""The `maas` command's own surface: help on every option, flags in error hints, a closed pipe, --max-retries."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import responses

from maas_client.cli import _parser, main
from tests.client.client_support import BASE, MAAS_MODELS

ROOT = Path(__file__).resolve().parents[2]
# How the Python API spells what a flag does on the command line: none may reach the command's stderr.
PYTHON_SPELLINGS = ("client.", "timeout=", "max_retries", "api_key=", "model=", "base_url", "with_options")


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    (group,) = [a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(group.choices)


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_every_option_and_positional_has_help(name: str) -> None:
    missing = [action.dest for action in _subcommands()[name]._actions
               if not isinstance(action, argparse._HelpAction) and not action.help]
    assert missing == []


def test_models_and_usage_take_no_model_but_the_others_do() -> None:
    # Both cover every model: `models` lists them, `usage` totals the caller's calls per model.
    options = {name: {o for a in sub._actions for o in a.option_strings} for name, sub in _subcommands().items()}
    assert "--model" not in options.pop("models") and "--model" not in options.pop("usage")
    assert all("--model" in given for given in options.values())


def test_models_with_a_model_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--model", "x"]) == 2
    assert "unrecognized arguments: --model" in capsys.readouterr().err


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main([*argv, "--base-url", BASE])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422, 429, 500, 503])
def test_error_hints_name_flags_not_the_python_api(status: int, mocked: responses.RequestsMock,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    mocked.post(f"{BASE}/v1/embeddings", status=status, json={"error": {"message": "no"}})
    code, err = _run(capsys, "embed", "x", "--model", "m", "--max-retries", "0")
    assert code == 1 and f"HTTP {status}" in err
    assert not [s for s in PYTHON_SPELLINGS if s in err], err


def test_an_unknown_model_points_at_maas_models(mocked: responses.RequestsMock,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    mocked.post(f"{BASE}/v1/embeddings", status=404, json={"error": {"message": "no model 'm'"}})
    _, err = _run(capsys, "embed", "x", "--model", "m")
    assert "`maas models` lists them" in err and "--base-url" in err


def test_a_timeout_points_at_the_timeout_flag(mocked: responses.RequestsMock,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    mocked.get(f"{BASE}/v1/models", body=requests.exceptions.ReadTimeout("read timed out"))
    code, err = _run(capsys, "models", "--max-retries", "0")
    assert code == 1 and "pass a larger --timeout SECONDS" in err
    assert not [s for s in PYTHON_SPELLINGS if s in err], err


def test_no_default_model_points_at_the_model_flag(mocked: responses.RequestsMock,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    mocked.get(f"{BASE}/v1/models", json={"object": "list", "data": []})
    code, err = _run(capsys, "embed", "x")
    assert code == 1 and "pass --model" in err
    assert not [s for s in PYTHON_SPELLINGS if s in err], err


def test_max_retries_0_fails_at_once(mocked: responses.RequestsMock, sleeps: list[float],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    refused = requests.ConnectionError("[Errno 111] Connection refused")
    mocked.get(f"{BASE}/v1/models", body=refused)
    code, err = _run(capsys, "models", "--max-retries", "0")
    assert code == 1 and "Connection refused" in err and "--base-url (or MAAS_BASE_URL)" in err
    assert (len(mocked.calls), sleeps) == (1, [])
    assert _run(capsys, "models")[0] == 1  # the default: two retries, with backoff
    assert (len(mocked.calls), len(sleeps)) == (4, 2)


@pytest.fixture
def models_server() -> Iterator[str]:
    """A real HTTP server answering GET /v1/models, for the command run as a process."""
    body = json.dumps(MAAS_MODELS).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_closed_pipe_exits_0_quietly(models_server: str) -> None:
    # `maas models | head -0`: the reader is gone before the command writes anything.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, "-m", "maas_client.cli", "models", "--base-url", models_server],
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (0, "")
