"""The admin methods of Client and AsyncClient against the real app (create_app, a fake embedder),
with an admin key: keys created, scoped, limited, listed, revoked; usage per bucket; the audit log."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import maas_client as maas

pytest.importorskip("flask")
pytest.importorskip("httpx")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    from werkzeug.serving import make_server

    from maas_server.accounts import create_key
    from tests.server.accounting_support import accounts_of, word_app

    app = word_app(Path(tmp_path_factory.mktemp("admin")), auth="keys")
    root, _ = create_key(accounts_of(app).store, "root", admin=True)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", root
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture(params=["Client", "AsyncClient"])
def connect(request: pytest.FixtureRequest, served: tuple[str, str]) -> Iterator[Any]:
    """`connect(key)`: a function calling one client's methods with `key`, the same way for both clients."""
    url, _ = served
    loop = asyncio.new_event_loop()
    clients: list[Any] = []

    def make(key: str) -> Any:
        client = getattr(maas, request.param)(base_url=url, api_key=key, max_retries=0, timeout=30)
        clients.append(client)

        class Calls:
            def __getattr__(self, name: str) -> Any:
                method = getattr(client, name)
                if request.param == "Client":
                    return method
                return lambda *args, **kwargs: loop.run_until_complete(method(*args, **kwargs))
        return Calls()

    yield make
    for client in clients:
        result = client.close()
        if asyncio.iscoroutine(result):
            loop.run_until_complete(result)
    loop.close()


def test_an_admin_key_manages_another_key_over_http(connect: Any, served: tuple[str, str]) -> None:
    _, root = served
    admin = connect(root)
    created = admin.admin_create_key(f"team-{id(admin)}", rpm=50, models=["words"], expires_at="2999-01-01")
    assert created.key.startswith("maas_") and created.request_id
    assert (created.rpm, created.models, created.status, created.admin) == (50, ["words"], "active", False)
    team = connect(created.key)
    assert len(team.embed("a few words").data) == 1

    updated = admin.admin_update_key(created.id, rpm=None, cpm=2.5)
    assert (updated.rpm, updated.cpm, updated.models) == (None, 2.5, ["words"])
    assert created.id in {key.id for key in admin.admin_keys()}

    with pytest.raises(maas.PermissionDeniedError):
        team.admin_keys()  # not an admin key

    usage = admin.admin_usage(bucket="minute", key_id=created.id)
    assert usage.bucket == "minute" and usage.data and usage.data[0].requests >= 1
    assert usage.data[0].compute_seconds >= 0 and usage.data[0].key == created.name

    actions = [entry.action for entry in admin.admin_audit(key_id=created.id)]
    assert actions[:2] == ["key.update", "key.create"]  # newest first

    revoked = admin.admin_revoke_key(created.id)
    assert revoked.status == "revoked" and revoked.revoked_at is not None
    with pytest.raises(maas.AuthenticationError):
        team.embed("refused now")
