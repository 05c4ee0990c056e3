"""Error statuses become the right exception class, carrying what the server said."""

from __future__ import annotations

import pytest
import requests
import responses

import maas_client as maas
from maas_client.errors import status_error_class
from tests.client.client_support import BASE

STATUS_CLASSES = [
    (400, maas.BadRequestError),
    (401, maas.AuthenticationError),
    (403, maas.PermissionDeniedError),
    (404, maas.NotFoundError),
    (413, maas.RequestTooLargeError),
    (422, maas.UnprocessableEntityError),
    (429, maas.RateLimitError),
    (500, maas.InternalServerError),
    (502, maas.InternalServerError),
    (503, maas.ServiceUnavailableError),
    (504, maas.InternalServerError),
    (405, maas.APIStatusError),
    (409, maas.APIStatusError),
]


@pytest.mark.parametrize(("status", "cls"), STATUS_CLASSES)
def test_status_maps_to_its_class(status: int, cls: type[maas.APIStatusError]) -> None:
    assert status_error_class(status) is cls


@pytest.mark.parametrize(("status", "cls"), STATUS_CLASSES)
def test_each_status_raises_its_class_with_the_server_error_fields(
    mocked: responses.RequestsMock, status: int, cls: type[maas.APIStatusError]
) -> None:
    error = {"type": "invalid_request_error", "message": "max_tokens must be <= 512",
             "param": "max_tokens", "code": "too_large"}
    mocked.post(f"{BASE}/v1/completions", status=status, json={"error": error},
                headers={"X-Request-ID": "req-123"})
    client = maas.Client(base_url=BASE, max_retries=0)
    with pytest.raises(cls) as caught:
        client.generate("a", model="m")
    exc = caught.value
    assert type(exc) is cls
    assert exc.status_code == status
    assert exc.request_id == "req-123"
    assert (exc.type, exc.param, exc.code) == ("invalid_request_error", "max_tokens", "too_large")
    assert exc.message == "POST /v1/completions: max_tokens must be <= 512"
    assert exc.body == {"error": error}
    assert exc.response is not None and exc.response.status_code == status
    text = str(exc)
    assert f"HTTP {status}" in text and "max_tokens must be <= 512" in text and "req-123" in text


def test_the_tree_is_rooted_at_maas_error() -> None:
    assert issubclass(maas.APITimeoutError, maas.APIConnectionError)
    assert issubclass(maas.ServiceUnavailableError, maas.InternalServerError)
    for cls in (maas.APIConnectionError, maas.APIStatusError, maas.APIStreamError):
        assert issubclass(cls, maas.APIError)
        assert issubclass(cls, maas.MaasError)


def test_messages_say_what_to_fix(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/v1/models", status=401, json={"error": {"message": "invalid API key"}})
    with pytest.raises(maas.AuthenticationError, match="MAAS_API_KEY"):
        maas.Client(base_url=BASE).models()


def test_non_json_error_body_still_gives_a_message(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/v1/models", status=404, body="<html>no such page</html>",
               content_type="text/html")
    with pytest.raises(maas.NotFoundError) as caught:
        maas.Client(base_url=BASE).models()
    assert "no such page" in caught.value.message
    assert caught.value.type is None


def test_request_id_falls_back_to_the_one_sent(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/v1/models", status=400, json={"error": {"message": "bad"}})
    with pytest.raises(maas.BadRequestError) as caught:
        maas.Client(base_url=BASE).models()
    assert caught.value.request_id == mocked.calls[0].request.headers["X-Request-ID"]


def test_connection_refused_is_an_api_connection_error(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/v1/models", body=requests.ConnectionError("[Errno 111] Connection refused"))
    with pytest.raises(maas.APIConnectionError, match=r"Connection refused.*server is running") as caught:
        maas.Client(base_url=BASE, max_retries=0).models()
    assert not isinstance(caught.value, maas.APITimeoutError)


def test_timeout_is_an_api_timeout_error(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/v1/models", body=requests.ReadTimeout("read timed out"))
    with pytest.raises(maas.APITimeoutError, match=r"timed out \(connect 1.0 s, read 2.0 s\)"):
        maas.Client(base_url=BASE, max_retries=0, timeout=(1, 2)).models()


def test_a_200_that_is_not_json_is_an_api_error(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/v1/models", body="<html>proxy login</html>", content_type="text/html")
    with pytest.raises(maas.APIError, match=r"not JSON.*base URL"):
        maas.Client(base_url=BASE).models()


def test_a_response_of_the_wrong_shape_is_an_api_error(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/v1/models", json={"models": []})
    with pytest.raises(maas.APIError, match="not a valid ModelList"):
        maas.Client(base_url=BASE).models()
