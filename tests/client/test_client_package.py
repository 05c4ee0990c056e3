"""The package surface: exports, version, and a light import."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import maas_client

ROOT = Path(__file__).resolve().parents[2]


def test_all_is_sorted_and_lists_every_public_name() -> None:
    public = [
        name for name, value in vars(maas_client).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
        and name not in ("annotations",)  # from __future__ import annotations
    ]
    assert maas_client.__all__ == sorted(maas_client.__all__, key=str.casefold)
    assert set(maas_client.__all__) == set(public) | {"__version__"}
    for name in maas_client.__all__:
        assert hasattr(maas_client, name)


def test_version_is_exposed() -> None:
    assert maas_client.__version__ == "0.2.0"


def test_importing_the_client_loads_no_heavy_dependency() -> None:
    code = (
        "import json, sys, maas_client, maas_client.cli; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, check=True
    )
    loaded = set(json.loads(result.stdout))
    assert "maas_client" in loaded
    # httpx is AsyncClient's (the async extra), imported when one is made; asyncio costs 20 ms.
    assert loaded.isdisjoint({"torch", "flask", "transformers", "PIL", "numpy", "maas_server", "httpx", "asyncio"})


def test_the_base_install_is_requests_tenacity_and_pydantic_and_async_adds_httpx() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(requirements: list[str]) -> set[str]:
        return {re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower() for requirement in requirements}

    assert names(project["dependencies"]) == {"requests", "tenacity", "pydantic"}
    assert names(project["optional-dependencies"]["async"]) == {"httpx"}


def test_both_clients_and_their_streams_are_exported() -> None:
    assert {"Client", "AsyncClient", "Stream", "AsyncStream", "StructuredOutputError"} <= set(maas_client.__all__)
    assert maas_client.AsyncClient.__module__ == "maas_client.async_client"


def test_an_async_client_made_without_httpx_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['httpx'] = None; import maas_client\n"
        "try:\n    maas_client.AsyncClient()\nexcept maas_client.MaasError as exc:\n    print(exc)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env,
                            check=True)
    assert "pip install 'maas-kit[async]'" in result.stdout


def test_package_is_marked_typed() -> None:
    assert (ROOT / "maas_client" / "py.typed").exists()
