"""Safe defaults: no blind unpickling, no paths from the wire, CORS off unless configured."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from maas_server.accounts import create_key
from tests.server.accounting_support import accounts_of, word_app


class _Payload:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.marker,))


def test_pth_weights_are_never_unpickled_blindly(tmp_path: Path) -> None:
    from maas_server.models.image_classification import _read_weights

    marker = tmp_path / "code-ran"
    weights = tmp_path / "evil.pth"
    torch.save({"state_dict": _Payload(marker)}, weights)
    with pytest.raises(Exception, match=r"(?i)weights.only|unsupported|global"):
        _read_weights(str(weights))
    assert not marker.exists()


@pytest.mark.parametrize("name", ["/etc/passwd", "../words", "pkg://maas_server/default_config.toml", "gpt2"])
def test_a_model_name_selects_only_configured_models(tmp_path: Path, name: str) -> None:
    client = word_app(tmp_path).test_client()
    response = client.post("/v1/embeddings", json={"input": "hi", "model": name})
    assert response.status_code == 404 and response.json["error"]["code"] == "model_not_found"


def test_cors_is_off_by_default(tmp_path: Path) -> None:
    app = word_app(tmp_path)
    client = app.test_client()
    keyless = client.post("/v1/embeddings", json={"input": "hi"}, headers={"Origin": "https://evil.example"})
    assert keyless.status_code == 403 and "Access-Control-Allow-Origin" not in keyless.headers  # test_browsers.py
    key, _ = create_key(accounts_of(app).store, "web")
    keyed = client.post("/v1/embeddings", json={"input": "hi"}, headers={"Origin": "https://evil.example",
                                                                        "Authorization": f"Bearer {key}"})
    assert keyed.status_code == 200 and "Access-Control-Allow-Origin" not in keyed.headers


def test_cors_answers_configured_origins_only(tmp_path: Path) -> None:
    app = word_app(tmp_path, cors_origins=("https://app.example",))
    client = app.test_client()
    key, _ = create_key(accounts_of(app).store, "web")
    preflight = client.options("/v1/embeddings", headers={"Origin": "https://app.example",
                                                          "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 200  # no key needed for a preflight
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    ok = client.post("/v1/embeddings", json={"input": "hi"}, headers={"Origin": "https://app.example",
                                                                     "Authorization": f"Bearer {key}"})
    assert ok.headers["Access-Control-Allow-Origin"] == "https://app.example"
    other = client.post("/v1/embeddings", json={"input": "hi"}, headers={"Origin": "https://evil.example",
                                                                        "Authorization": f"Bearer {key}"})
    assert "Access-Control-Allow-Origin" not in other.headers
