"""Fixtures for the client tests: a mocked server (``responses``), the fake adapter, and no
real sleeping between retries."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
import responses

import maas_client as maas
from maas_client import _retry
from tests.client.client_support import BASE, MAAS_MODELS, FakeAdapter


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start without MAAS_* settings from the developer's shell."""
    for name in ("MAAS_BASE_URL", "MAAS_API_KEY", "MAAS_LOG"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Retries wait zero real time; the waits the policy asked for are recorded here."""
    recorded: list[float] = []
    monkeypatch.setattr(_retry, "_sleep", recorded.append)
    return recorded


@pytest.fixture(autouse=True)
def async_sleeps(monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> list[float]:
    """The async retry waits are recorded in the same list as the sync ones, and take no time."""
    async def record(seconds: float) -> None:
        sleeps.append(seconds)

    monkeypatch.setattr(_retry, "_async_sleep", record)
    return sleeps


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def server(mocked: responses.RequestsMock) -> responses.RequestsMock:
    """A mocked maas server that already answers ``GET /v1/models``."""
    mocked.get(f"{BASE}/v1/models", json=MAAS_MODELS)
    return mocked


@pytest.fixture
def client() -> Iterator[maas.Client]:
    with maas.Client(base_url=BASE) as c:
        yield c


@pytest.fixture
def fake() -> FakeAdapter:
    return FakeAdapter()


@pytest.fixture
def fake_client(fake: FakeAdapter) -> Iterator[maas.Client]:
    session = requests.Session()
    session.mount(BASE, fake)
    with maas.Client(base_url=BASE, session=session) as c:
        yield c
