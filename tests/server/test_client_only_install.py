"""`maas-server` in a client-only install (`pip install maas-kit`): the install line, exit 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Imports the server extra brings (pyproject.toml's `server`): a client-only install has none of them.
BLOCKER = """
import importlib.abc, sys
SERVER_ONLY = {"flask", "gunicorn", "pydantic_settings", "platformdirs", "torch", "torchvision", "transformers",
               "sqlalchemy", "redis", "prometheus_client", "PIL", "numpy", "spacy", "timm", "captum"}
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in SERVER_ONLY:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Blocker())
"""


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BLOCKER + code], capture_output=True, text=True, timeout=60,
                          cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize("argv", [["--help"], ["serve"], ["keys", "list"]])
def test_maas_server_without_the_server_extra_prints_the_install_line_and_exits_2(argv: list[str]) -> None:
    done = _run(f"import sys; from maas_server._entry import main; sys.exit(main({argv!r}))")
    assert done.returncode == 2, done.stderr
    assert "pip install 'maas-kit[server]'" in done.stderr and "Traceback" not in done.stderr


def test_the_client_works_without_the_server_extra() -> None:
    done = _run("import maas_client; print(maas_client.Client(base_url='http://127.0.0.1:9').base_url)")
    assert done.returncode == 0, done.stderr


def test_with_the_server_extra_the_entry_point_runs_the_server_command(capsys: pytest.CaptureFixture[str]) -> None:
    from maas_server._entry import main

    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0 and "serve" in capsys.readouterr().out


def test_the_console_script_is_the_checking_entry_point_and_the_name_is_ours() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["maas-server"] == "maas_server._entry:main"
    assert project["name"] == "maas-kit"  # `maas` on PyPI is another project
