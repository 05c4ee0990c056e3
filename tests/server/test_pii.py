"""Personal data: the pii adapter, POST /v1/pii, and keys whose input is redacted before a model sees it.

The pii model here is Presidio over a blank English spaCy pipeline with an entity ruler (names by rule, no
weights; tests/server/conftest.py): the pattern recognizers (emails, phones, cards, IBANs, IPs) are Presidio's
own. The generation and embedding models are the tiny ones, wrapped so that the test sees every item they
are given: what a redacting key sends reaches them redacted.
"""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from maas_server.accounts import create_key
from maas_server.app import create_app
from maas_server.config import ModelConfig
from maas_server.models import load_model
from maas_server.models.pii import resolve_overlaps
from maas_server.models.pii_io import FIND_PII, PiiItem
from maas_server.models.text_io import TokenIds
from maas_server.runtime.assembly import load_configured_model
from maas_server.settings import load_settings
from tests.server.accounting_support import accounts_of, word_app

TEXT = "Mail Ada Lovelace at ada@example.com or call 212-555-0199 about card 4111 1111 1111 1111."
EMAIL = "ada@example.com"


class Recording:
    """A loaded model whose methods note every item they are given (in `seen`) before preparing it."""

    def __init__(self, model: Any, seen: list[Any]) -> None:
        self.model, self.seen, self.task = model, seen, model.task

    def describe(self) -> Any:
        return self.model.describe()

    def warmup(self) -> None:
        self.model.warmup()

    def batch_methods(self) -> dict[Any, Any]:
        return {method: replace(batch, prepare=self._noting(batch.prepare))
                for method, batch in self.model.batch_methods().items()}

    def _noting(self, prepare: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def noted(item: Any) -> Any:
            self.seen.append(item)
            return prepare(item)
        return noted


SEEN: dict[str, list[Any]] = {}


def _recording_loader(config: Any, server: Any) -> Any:
    return Recording(load_configured_model(config, server), SEEN.setdefault(config.name, []))


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, tiny_gpt2: str, tiny_bert: str, tiny_pii: str) -> Flask:
    tmp = tmp_path_factory.mktemp("pii-app")
    settings = load_settings({"data_dir": tmp / "data", "auth_cache_seconds": 0}, file={
        "server": {"cache_dir": str(tmp / "cache"), "max_inputs": 4, "max_entity_characters": 2000},
        "models": [{"name": "tiny-gpt2", "task": "text-generation", "source": tiny_gpt2},
                   {"name": "tiny-embed", "task": "embeddings", "source": tiny_bert},
                   {"name": "ruler-pii", "task": "pii", "source": tiny_pii}]})
    app = create_app(settings, loader=_recording_loader)
    assert app.extensions["maas"].registry.wait_until_loaded(120)
    assert app.extensions["maas"].registry.ready, [e.error for e in app.extensions["maas"].registry.entries()]
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    for seen in SEEN.values():
        seen.clear()
    return app.test_client()


def _key(app: Flask, **options: Any) -> dict[str, str]:
    key, _ = create_key(accounts_of(app).store, f"key-{uuid.uuid4().hex[:8]}", **options)
    return {"Authorization": f"Bearer {key}"}


# -- the adapter

def _model(source: str, tmp_path: Path) -> Any:
    return load_model(ModelConfig(name="pii", task="pii", source=source), "cpu", None, tmp_path)


def test_spans_do_not_overlap_the_higher_score_then_the_pattern_then_the_longer_wins() -> None:
    from presidio_analyzer import RecognizerResult

    def result(kind: str, start: int, end: int, score: float, ner: bool = False) -> RecognizerResult:
        name = "SpacyRecognizer" if ner else "PatternRecognizer"
        return RecognizerResult(kind, start, end, score, recognition_metadata={"recognizer_name": name})

    kept = resolve_overlaps([result("PERSON", 0, 19, 0.85, ner=True), result("CREDIT_CARD", 0, 19, 1.0),
                             result("PHONE_NUMBER", 30, 42, 0.85), result("PERSON", 30, 42, 0.85, ner=True),
                             result("URL", 50, 55, 0.5), result("EMAIL_ADDRESS", 45, 60, 0.5),
                             result("IP_ADDRESS", 70, 80, 0.6)])
    assert [(r.entity_type, r.start) for r in kept] == [("CREDIT_CARD", 0), ("PHONE_NUMBER", 30),
                                                        ("EMAIL_ADDRESS", 45), ("IP_ADDRESS", 70)]


def test_the_model_finds_the_default_types_and_leaves_out_org_and_location(tiny_pii: str, tmp_path: Path) -> None:
    model = _model(tiny_pii, tmp_path)
    method = model.batch_methods()[FIND_PII]
    text = "The IBAN of Ada Lovelace in Paris is GB82 WEST 1234 5698 7654 32; her server is 192.168.1.20."
    (result,) = method.run([method.prepare(PiiItem(text, redaction="type"))])
    assert [(s.type, text[s.start:s.end]) for s in result.spans] == [
        ("PERSON", "Ada Lovelace"), ("IBAN_CODE", "GB82 WEST 1234 5698 7654 32"), ("IP_ADDRESS", "192.168.1.20")]
    assert result.redacted == "The IBAN of <PERSON> in Paris is <IBAN_CODE>; her server is <IP_ADDRESS>."
    assert model.describe().labels and "LOCATION" in model.describe().labels  # asked for by name only
    (located,) = method.run([method.prepare(PiiItem(text, types=("LOCATION",)))])
    assert [text[s.start:s.end] for s in located.spans] == ["Paris"] and located.redacted is None


def test_email_checks_use_the_bundled_suffix_list_without_network_or_errors(
        tiny_pii: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    connections: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> None:
        connections.append(args)
        raise OSError("no network in this test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)  # Presidio's own EmailRecognizer gets here twice
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # where tldextract would write its list
    caplog.set_level(logging.DEBUG)
    model = _model(tiny_pii, tmp_path / "model")
    method = model.batch_methods()[FIND_PII]
    texts = ["write to ada@example.com", "or to bob@mail.example.co.uk", "not an email: ada@example.notatld"]
    results = method.run([method.prepare(PiiItem(text)) for text in texts])
    assert [[s.type for s in r.spans] for r in results] == [["EMAIL_ADDRESS"], ["EMAIL_ADDRESS"], []]
    assert connections == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert not (tmp_path / "cache").exists()


def test_too_long_a_text_and_unknown_types_are_invalid_inputs(tiny_pii: str, tmp_path: Path) -> None:
    from maas_server.models.contract import InvalidInput

    model = load_model(ModelConfig(name="pii", task="pii", source=tiny_pii, max_context=10), "cpu", None, tmp_path)
    method = model.batch_methods()[FIND_PII]
    with pytest.raises(InvalidInput, match="10 characters"):
        method.prepare(PiiItem("x" * 11))
    with pytest.raises(InvalidInput, match="ORGANIZATION"):
        method.prepare(PiiItem("x", types=("ORGANIZATION",)))


# -- POST /v1/pii

def test_pii_gives_types_offsets_and_scores_but_not_the_text_unless_asked(client: FlaskClient) -> None:
    answer = client.post("/v1/pii", json={"input": TEXT})
    assert answer.status_code == 200, answer.json
    (result,) = answer.json["data"]
    found = [(e["type"], TEXT[e["start"]:e["end"]]) for e in result["entities"]]
    assert found == [("PERSON", "Ada Lovelace"), ("EMAIL_ADDRESS", EMAIL), ("PHONE_NUMBER", "212-555-0199"),
                     ("CREDIT_CARD", "4111 1111 1111 1111")]
    assert all(0 < e["score"] <= 1 and e["text"] is None for e in result["entities"])
    assert result["redacted"] is None and answer.json["model"] == "ruler-pii"
    assert EMAIL not in answer.get_data(as_text=True)
    shown = client.post("/v1/pii", json={"input": TEXT, "include_text": True}).json["data"][0]["entities"]
    assert [e["text"] for e in shown] == [text for _, text in found]


def test_pii_redacts_with_type_tags_or_a_mask_per_input(client: FlaskClient) -> None:
    answer = client.post("/v1/pii", json={"input": [TEXT, "Nothing personal here."], "redact": "type"})
    assert answer.status_code == 200, answer.json
    first, second = answer.json["data"]
    assert first["redacted"] == ("Mail <PERSON> at <EMAIL_ADDRESS> or call <PHONE_NUMBER> about card "
                                 "<CREDIT_CARD>.")
    assert (second["index"], second["entities"], second["redacted"]) == (1, [], "Nothing personal here.")
    assert answer.json["usage"]["prompt_tokens"] > 0
    masked = client.post("/v1/pii", json={"input": TEXT, "redact": "mask", "mask_char": "#",
                                          "types": ["EMAIL_ADDRESS"]}).json["data"][0]["redacted"]
    assert masked == TEXT.replace(EMAIL, "#" * len(EMAIL))


def test_pii_score_threshold_leaves_out_weaker_spans(client: FlaskClient) -> None:
    scores = [e["score"] for e in client.post("/v1/pii", json={"input": TEXT}).json["data"][0]["entities"]]
    cut = sorted(scores)[0] + 0.01
    kept = client.post("/v1/pii", json={"input": TEXT, "score_threshold": cut}).json["data"][0]["entities"]
    assert len(kept) == len([s for s in scores if s >= cut]) < len(scores)


@pytest.mark.parametrize(("body", "param"), [
    ({"input": ""}, "input"), ({"input": []}, "input"), ({"input": ["a"] * 5}, "input"),
    ({"input": "a", "types": ["ORGANIZATION"]}, "types"), ({"input": "a", "types": []}, "types"),
    ({"input": "a", "redact": "hash"}, "redact"), ({"input": "a", "mask_char": "##"}, "mask_char"),
    ({"input": "a", "score_threshold": 1.5}, "score_threshold"), ({"input": "x" * 2001}, "input"),
    ({"input": "a", "model": "tiny-embed"}, "model"), ({"input": 5}, "input"),
])
def test_pii_refuses_bad_requests_with_a_400_naming_the_field(client: FlaskClient, body: dict[str, Any],
                                                              param: str) -> None:
    answer = client.post("/v1/pii", json=body)
    assert answer.status_code == 400, answer.json
    assert answer.json["error"]["param"] == param, answer.json


def test_pii_is_a_task_scope(app: Flask, client: FlaskClient) -> None:
    embeddings_only = _key(app, tasks=["embeddings"])
    refused = client.post("/v1/pii", json={"input": TEXT}, headers=embeddings_only)
    assert (refused.status_code, refused.json["error"]["code"]) == (403, "task_not_allowed")
    assert client.post("/v1/pii", json={"input": TEXT}, headers=_key(app, tasks=["pii"])).status_code == 200


# -- the redact_input policy

def _texts_seen(model: str) -> str:
    """Everything the model was given, as one string."""
    parts = []
    for item in SEEN[model]:
        if isinstance(item, str):
            parts.append(item)
        elif item.prompt is not None:
            parts.append(item.prompt)
        else:
            parts.extend(m["content"] for m in item.messages)
    return "\n".join(parts)


POLICY_CALLS = [
    ("tiny-gpt2", "/v1/chat/completions", {"max_tokens": 2, "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": TEXT}]}),
    ("tiny-gpt2", "/v1/chat/completions", {"max_tokens": 2, "stream": True,
                                           "messages": [{"role": "user", "content": TEXT}]}),
    ("tiny-gpt2", "/v1/completions", {"max_tokens": 2, "prompt": [TEXT, "Hello"]}),
    ("tiny-gpt2", "/v1/responses", {"max_output_tokens": 2, "input": TEXT}),
    ("tiny-embed", "/v1/embeddings", {"input": [TEXT, "plain words"]}),
    ("tiny-gpt2", "/models/tiny-gpt2/generate", {"inputs": TEXT, "parameters": {"max_new_tokens": 2}}),
]


@pytest.mark.parametrize(("model", "route", "body"), POLICY_CALLS, ids=[f"{r} {b.get('stream', '')}"
                                                                        for _, r, b in POLICY_CALLS])
def test_a_redacting_keys_input_reaches_the_model_redacted(app: Flask, client: FlaskClient, model: str, route: str,
                                                             body: dict[str, Any]) -> None:
    answer = client.post(route, json={"model": model, **body} if route.startswith("/v1") else body,
                         headers=_key(app, redact_input=True))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    seen = _texts_seen(model)
    assert "<PERSON>" in seen and "<EMAIL_ADDRESS>" in seen and "<CREDIT_CARD>" in seen
    assert EMAIL not in seen and "Ada" not in seen and "4111" not in seen and "0199" not in seen
    assert answer.headers["X-Maas-Redacted"] == "4"


def test_a_key_without_the_policy_is_served_its_text_as_sent(app: Flask, client: FlaskClient) -> None:
    redacting, plain = _key(app, redact_input=True), _key(app)
    body = {"model": "tiny-embed", "input": TEXT}
    assert client.post("/v1/embeddings", json=body, headers=redacting).status_code == 200
    answer = client.post("/v1/embeddings", json=body, headers=plain)
    assert answer.status_code == 200 and "X-Maas-Redacted" not in answer.headers
    assert SEEN["tiny-embed"][-1] == TEXT and EMAIL not in SEEN["tiny-embed"][0]


def test_a_redacting_key_with_nothing_to_redact_is_told_zero(app: Flask, client: FlaskClient) -> None:
    answer = client.post("/v1/embeddings", json={"model": "tiny-embed", "input": "plain words"},
                         headers=_key(app, redact_input=True))
    assert answer.headers["X-Maas-Redacted"] == "0" and SEEN["tiny-embed"] == ["plain words"]


def test_a_redacting_key_must_send_text_not_token_ids(app: Flask, client: FlaskClient) -> None:
    answer = client.post("/v1/embeddings", json={"model": "tiny-embed", "input": [[101, 102]]},
                         headers=_key(app, redact_input=True))
    assert (answer.status_code, answer.json["error"]["code"]) == (400, "redaction_needs_text")
    assert not [item for item in SEEN["tiny-embed"] if isinstance(item, TokenIds)]


def test_the_admin_api_turns_the_policy_on_and_off(app: Flask, client: FlaskClient) -> None:
    admin = _key(app, admin=True)
    created = client.post("/v1/admin/keys", json={"name": "via-api", "redact_input": True}, headers=admin).json
    assert created["redact_input"] is True
    caller = {"Authorization": f"Bearer {created['key']}"}
    body = {"model": "tiny-embed", "input": TEXT}
    assert client.post("/v1/embeddings", json=body, headers=caller).headers["X-Maas-Redacted"] == "4"
    patched = client.patch(f"/v1/admin/keys/{created['id']}", json={"redact_input": False}, headers=admin)
    assert patched.json["redact_input"] is False
    assert "X-Maas-Redacted" not in client.post("/v1/embeddings", json=body, headers=caller).headers
    assert SEEN["tiny-embed"][-1] == TEXT
    assert client.patch(f"/v1/admin/keys/{created['id']}", json={"redact_input": None},
                        headers=admin).status_code == 400


def test_without_a_pii_model_a_redacting_key_is_refused_not_served_unredacted(tmp_path: Path) -> None:
    app = word_app(tmp_path)  # the fake embedder only
    redacting, _ = create_key(accounts_of(app).store, "redacting", redact_input=True)
    plain, _ = create_key(accounts_of(app).store, "plain")
    client = app.test_client()
    refused = client.post("/v1/embeddings", json={"input": TEXT}, headers={"Authorization": f"Bearer {redacting}"})
    assert (refused.status_code, refused.json["error"]["code"]) == (503, "redaction_unavailable")
    assert client.post("/v1/embeddings", json={"input": TEXT},
                       headers={"Authorization": f"Bearer {plain}"}).status_code == 200
