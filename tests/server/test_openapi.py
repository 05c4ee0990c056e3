"""/openapi.json describes every route, content type and error the server answers with."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask

from tests.server.accounting_support import word_app

_ENVELOPE = {"$ref": "#/components/schemas/ErrorResponse"}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    return word_app(tmp_path_factory.mktemp("openapi"))


@pytest.fixture(scope="module")
def spec(app: Flask) -> dict[str, Any]:
    response = app.test_client().get("/openapi.json")
    assert response.status_code == 200
    assert isinstance(response.json, dict)
    return response.json


def _template(rule: str) -> str:
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", "{}", rule)


def test_every_flask_route_is_described(app: Flask, spec: dict[str, Any]) -> None:
    served = {(_template(rule.rule), method.lower()) for rule in app.url_map.iter_rules()
              if rule.endpoint != "static" and not rule.endpoint.startswith("console.")  # pages, not API
              for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}}
    described = {(re.sub(r"\{[^}]+\}", "{}", path), method) for path, ops in spec["paths"].items() for method in ops}
    assert served == described


def test_streamed_generation_documents_event_streams(spec: dict[str, Any]) -> None:
    for path, chunk in (("/v1/completions", "Completion"), ("/v1/chat/completions", "ChatCompletionChunk")):
        content = spec["paths"][path]["post"]["responses"]["200"]["content"]
        assert set(content) == {"application/json", "text/event-stream"}
        data = content["text/event-stream"]["schema"]["properties"]["data"]
        assert {"const": "[DONE]"} in data["anyOf"]
        assert {"$ref": f"#/components/schemas/{chunk}"} in data["anyOf"][1]["contentSchema"]["anyOf"]
    assert "ChatCompletionChunk" in spec["components"]["schemas"]


def test_image_classification_takes_multipart_or_json(spec: dict[str, Any]) -> None:
    body = spec["paths"]["/v1/classify/image"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "multipart/form-data"}
    assert body["multipart/form-data"]["schema"]["properties"]["image"]["items"]["format"] == "binary"


def test_v1_routes_document_the_error_envelope(spec: dict[str, Any]) -> None:
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if not path.startswith("/v1/"):
                continue
            responses = op["responses"]
            assert {"400", "401", "429", "503"} <= set(responses), (method, path)
            if method == "post":
                assert {"400", "404", "413"} <= set(responses), path
            for status, answer in responses.items():
                if status != "200":
                    assert answer["content"]["application/json"]["schema"] == _ENVELOPE
            assert op["security"] == [{"bearer": []}]
            assert "Retry-After" in responses["429"]["headers"] and "Retry-After" in responses["503"]["headers"]
    assert "404" in spec["paths"]["/v1/models/{model}"]["get"]["responses"]


def test_operational_routes_are_described(spec: dict[str, Any]) -> None:
    paths = spec["paths"]
    assert paths["/health"]["get"]["security"] == [] and "Health" in spec["components"]["schemas"]
    ready = paths["/ready"]["get"]["responses"]
    assert ready["503"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Readiness"}
    metrics = paths["/metrics"]["get"]
    assert set(metrics["responses"]["200"]["content"]) == {"text/plain"} and "401" in metrics["responses"]
    usage = paths["/v1/usage"]["get"]
    assert [p["name"] for p in usage["parameters"]] == ["since"]

