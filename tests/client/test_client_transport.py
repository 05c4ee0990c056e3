"""What every call carries (headers, timeouts), configuration, logging and connection reuse."""

from __future__ import annotations

import logging
import uuid

import pytest
import requests
import responses

import maas_client as maas
from maas_client import _transport
from tests.client.client_support import BASE, FakeAdapter, completion_chunk, sse

OK = {"object": "list", "data": []}


def test_every_call_sends_user_agent_and_a_uuid_request_id(
    mocked: responses.RequestsMock, client: maas.Client
) -> None:
    mocked.get(f"{BASE}/v1/models", json=OK)
    client.models()
    client.models()
    first, second = (call.request.headers for call in mocked.calls)
    assert first["User-Agent"] == f"maas-python/{maas.__version__}"
    assert uuid.UUID(first["X-Request-ID"]).version == 4
    assert first["X-Request-ID"] != second["X-Request-ID"]


def test_a_request_id_given_by_the_caller_is_sent(
    mocked: responses.RequestsMock, client: maas.Client
) -> None:
    mocked.get(f"{BASE}/v1/models", json=OK)
    client.models(extra_headers={"x-request-id": "trace-42"})
    assert mocked.calls[0].request.headers["X-Request-ID"] == "trace-42"


def test_api_key_is_sent_as_bearer(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/v1/models", json=OK)
    maas.Client(base_url=BASE, api_key="sk-test").models()
    assert mocked.calls[0].request.headers["Authorization"] == "Bearer sk-test"


def test_no_api_key_sends_no_authorization(mocked: responses.RequestsMock, client: maas.Client) -> None:
    mocked.get(f"{BASE}/v1/models", json=OK)
    client.models()
    assert "Authorization" not in mocked.calls[0].request.headers


def test_environment_configures_base_url_and_api_key(
    mocked: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAAS_BASE_URL", "http://env.test:9000/v1/")
    monkeypatch.setenv("MAAS_API_KEY", "sk-env")
    mocked.get("http://env.test:9000/v1/models", json=OK)
    client = maas.Client()
    assert client.base_url == "http://env.test:9000"
    client.models()
    assert mocked.calls[0].request.headers["Authorization"] == "Bearer sk-env"


def test_arguments_win_over_the_environment(
    mocked: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAAS_BASE_URL", "http://env.test")
    monkeypatch.setenv("MAAS_API_KEY", "sk-env")
    mocked.get("http://arg.test/v1/models", json=OK)
    client = maas.Client(base_url="http://arg.test", api_key="")
    client.models()
    assert "Authorization" not in mocked.calls[0].request.headers  # explicit "": no key


def test_the_api_key_never_shows_in_reprs() -> None:
    client = maas.Client(api_key="sk-very-secret")
    assert "sk-very-secret" not in repr(client) + repr(client._transport)


def test_default_base_url_and_options() -> None:
    client = maas.Client()
    assert client.base_url == "http://127.0.0.1:8000"
    assert client.timeout == maas.Timeout(connect=5.0, read=600.0)
    assert client.max_retries == 2


def test_a_base_url_without_scheme_is_refused() -> None:
    with pytest.raises(maas.MaasError, match="http:// or https://"):
        maas.Client(base_url="localhost:8000")


def test_negative_max_retries_is_refused() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        maas.Client(max_retries=-1)


@pytest.mark.parametrize(
    ("timeout", "expected"),
    [(None, (5.0, 600.0)), (10, (10.0, 10.0)), ((1, None), (1.0, None)),
     (maas.Timeout(connect=2, read=3), (2, 3))],
)
def test_timeouts_reach_requests_as_connect_read(
    fake: FakeAdapter, timeout: object, expected: tuple[float, float]
) -> None:
    session = requests.Session()
    session.mount(BASE, fake)
    fake.add([sse(completion_chunk("a"))])
    client = maas.Client(base_url=BASE, session=session, timeout=timeout)  # type: ignore[arg-type]
    list(client.generate("x", model="m", stream=True))
    assert fake.send_options[0]["timeout"] == expected
    assert fake.send_options[0]["stream"] is True


def test_timeout_per_call_and_via_with_options(fake: FakeAdapter, fake_client: maas.Client) -> None:
    for _ in range(3):
        fake.add([sse(completion_chunk("a"))])
    list(fake_client.generate("x", model="m", stream=True, timeout=(1, 2)))
    list(fake_client.with_options(timeout=7).generate("x", model="m", stream=True))
    list(fake_client.generate("x", model="m", stream=True))
    assert [options["timeout"] for options in fake.send_options] == [(1, 2), (7, 7), (5, 600)]


def test_with_options_shares_the_session_and_leaves_the_original_alone() -> None:
    client = maas.Client(base_url=BASE, max_retries=1)
    copy = client.with_options(max_retries=5, timeout=10)
    assert copy._transport.session is client._transport.session
    assert (copy.max_retries, copy.timeout) == (5, maas.Timeout(10, 10))
    assert (client.max_retries, client.timeout) == (1, maas.Timeout())


def test_close_closes_an_owned_session_but_not_an_injected_one(monkeypatch: pytest.MonkeyPatch) -> None:
    closed: list[str] = []
    monkeypatch.setattr(requests.Session, "close", lambda self: closed.append(getattr(self, "tag", "own")))
    injected = requests.Session()
    injected.tag = "injected"  # type: ignore[attr-defined]
    with maas.Client(session=injected) as client:
        client.with_options(max_retries=0).close()
    with maas.Client():
        pass
    assert closed == ["own"]


def test_debug_logging_shows_method_url_status_and_retries_but_no_secrets(
    mocked: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MAAS_LOG", "debug")
    logger = logging.getLogger("maas")
    monkeypatch.setattr(logger, "handlers", [])
    monkeypatch.setattr(logger, "level", logger.level)
    mocked.post(f"{BASE}/v1/completions", status=503, json={"error": {"message": "busy"}})
    mocked.post(f"{BASE}/v1/completions", json={"choices": [{"text": "secret-output"}]})
    client = maas.Client(base_url=BASE, api_key="sk-very-secret")
    assert logger.level == logging.DEBUG and logger.handlers
    with caplog.at_level(logging.DEBUG, logger="maas"):
        client.generate("secret-prompt", model="m")
    text = caplog.text
    assert f"POST {BASE}/v1/completions -> 503" in text
    assert f"POST {BASE}/v1/completions -> 200" in text
    assert " ms " in text
    assert "retrying POST" in text and "(retry 1 of 2) after 503" in text
    for secret in ("sk-very-secret", "secret-prompt", "secret-output"):
        assert secret not in text


def test_logging_stays_off_without_maas_log() -> None:
    logger = logging.getLogger("maas")
    before = (logger.level, list(logger.handlers))
    maas.Client()
    assert (logger.level, list(logger.handlers)) == before


def test_new_session_pools_enough_connections_for_threads() -> None:
    session = _transport.new_session()
    adapter = session.get_adapter("http://x")
    assert isinstance(adapter, requests.adapters.HTTPAdapter)
    assert adapter._pool_maxsize >= 16  # type: ignore[attr-defined]
