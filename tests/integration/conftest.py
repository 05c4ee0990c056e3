"""Start the real server, exactly as `make serve` does (gunicorn, default config), on a free port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from maas_server.testing import ServerProcess

READY_TIMEOUT_S = 600  # the first start on a fresh machine converts the GGUF model (~30-60 s on 2 cores)


@pytest.fixture(scope="session")
def server() -> Iterator[ServerProcess]:
    """The server process itself, for tests that look at its workers (memory, pids)."""
    server = ServerProcess(ready_timeout=READY_TIMEOUT_S)
    with server:
        yield server


@pytest.fixture(scope="session")
def server_url(server: ServerProcess) -> str:
    return server.url


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
