"""A pooled connection survives an error the server sent before reading the request body.

gunicorn drains at most 64 KB of an unread body and then drops a connection it had announced as
keep-alive; huggingface_hub's pooled session then failed its next call with RemoteDisconnected.
"""

from __future__ import annotations

import httpx
import pytest
import requests

BIG = b"\xff\xd8" + b"\0" * 220_000  # a "raw image" of 220 KB, refused before it is read
EARLY_ERRORS = [  # path, content type, status: each answered without reading the body
    ("/v1/classify/image", "image/jpeg", 400),
    ("/v1/embeddings", "text/plain", 400),
    ("/v1/no-such-route", "application/json", 404),
]


@pytest.mark.parametrize("path, content_type, status", EARLY_ERRORS)
def test_requests_session_reuses_its_pool_after_an_early_error(server_url: str, path: str, content_type: str,
                                                               status: int) -> None:
    with requests.Session() as session:
        for _ in range(3):
            refused = session.post(server_url + path, data=BIG, headers={"Content-Type": content_type}, timeout=30)
            assert refused.status_code == status
            assert session.post(f"{server_url}/v1/embeddings", json={"input": "hi"}, timeout=30).status_code == 200


@pytest.mark.parametrize("path, content_type, status", EARLY_ERRORS)
def test_httpx_client_reuses_its_pool_after_an_early_error(server_url: str, path: str, content_type: str,
                                                           status: int) -> None:
    with httpx.Client(timeout=30) as client:
        for _ in range(3):
            refused = client.post(server_url + path, content=BIG, headers={"Content-Type": content_type})
            assert refused.status_code == status
            assert refused.headers["Connection"] == "close"  # said, so the pool opens a new one
            assert client.post(f"{server_url}/v1/embeddings", json={"input": "hi"}).status_code == 200


def test_a_small_unread_body_is_drained_and_the_connection_kept(server_url: str) -> None:
    with httpx.Client(timeout=30) as client:
        refused = client.post(f"{server_url}/v1/embeddings", content=b"x" * 1000,
                              headers={"Content-Type": "text/plain"})
        assert refused.status_code == 400 and refused.headers["Connection"] == "keep-alive"
        assert client.post(f"{server_url}/v1/embeddings", json={"input": "hi"}).status_code == 200
