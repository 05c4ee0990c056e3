"""Personal data from the client: detect_pii and redact (the request each sends, the result) and `maas redact`."""

from __future__ import annotations

import json

import pytest
import responses

import maas_client as maas
from maas_client.cli import main
from tests.client.client_support import BASE

TEXT = "Mail Ada Lovelace at ada@example.com."
FOUND = {"object": "list", "model": "pii", "usage": {"prompt_tokens": 8, "total_tokens": 8}, "data": [
    {"index": 0, "entities": [{"type": "PERSON", "start": 5, "end": 17, "score": 0.85, "text": "Ada Lovelace"},
                              {"type": "EMAIL_ADDRESS", "start": 21, "end": 36, "score": 1.0,
                               "text": "ada@example.com"}],
     "redacted": "Mail <PERSON> at <EMAIL_ADDRESS>."},
    {"index": 1, "entities": [], "redacted": "Nothing here."}]}


@pytest.fixture
def server() -> responses.RequestsMock:
    with responses.RequestsMock() as mocked:
        mocked.post(f"{BASE}/v1/pii", json=FOUND)
        yield mocked


def _sent(server: responses.RequestsMock) -> dict:
    return json.loads(server.calls[-1].request.body)


def test_redact_sends_the_style_and_reads_each_redacted_text(server: responses.RequestsMock) -> None:
    result = maas.Client(base_url=BASE).redact([TEXT, "Nothing here."], model="pii", types=["PERSON", "EMAIL_ADDRESS"])
    assert _sent(server) == {"model": "pii", "input": [TEXT, "Nothing here."], "redact": "type",
                             "types": ["PERSON", "EMAIL_ADDRESS"]}
    assert result.redacted == "Mail <PERSON> at <EMAIL_ADDRESS>."
    assert result.redacted_texts == ["Mail <PERSON> at <EMAIL_ADDRESS>.", "Nothing here."]
    assert isinstance(result.entities[0], maas.PiiSpan) and result.entities[0].type == "PERSON"


def test_detect_pii_asks_for_the_text_only_when_told(server: responses.RequestsMock) -> None:
    client = maas.Client(base_url=BASE)
    client.detect_pii(TEXT, model="pii", score_threshold=0.5)
    assert _sent(server) == {"model": "pii", "input": TEXT, "score_threshold": 0.5}
    result = client.detect_pii(TEXT, model="pii", include_text=True)
    assert _sent(server)["include_text"] is True
    assert [(e.type, e.text) for e in result.entities] == [("PERSON", "Ada Lovelace"),
                                                           ("EMAIL_ADDRESS", "ada@example.com")]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


@pytest.fixture(autouse=True)
def _base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAAS_BASE_URL", BASE)


def test_maas_redact_prints_each_text_redacted(server: responses.RequestsMock,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(capsys, "redact", TEXT, "Nothing here.", "--model", "pii")
    assert (code, out) == (0, "Mail <PERSON> at <EMAIL_ADDRESS>.\nNothing here.\n")
    assert _sent(server)["redact"] == "type"


def test_maas_redact_masks_and_detects(server: responses.RequestsMock, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(capsys, "redact", TEXT, "--model", "pii", "--mask")[0] == 0
    assert (_sent(server)["redact"], _sent(server)["mask_char"]) == ("mask", "*")
    assert _run(capsys, "redact", TEXT, "--model", "pii", "--mask", "#", "--types", "EMAIL_ADDRESS")[0] == 0
    assert (_sent(server)["mask_char"], _sent(server)["types"]) == ("#", ["EMAIL_ADDRESS"])
    code, out = _run(capsys, "redact", TEXT, "--model", "pii", "--detect")
    assert code == 0 and "redact" not in _sent(server) and _sent(server)["include_text"] is True
    assert out.splitlines()[:2] == ["    5:17     PERSON          0.85  Ada Lovelace",
                                    "   21:36     EMAIL_ADDRESS   1.00  ada@example.com"]
    assert out.splitlines()[3] == "(no personal data found)"
