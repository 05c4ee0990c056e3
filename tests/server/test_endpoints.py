"""Every route's facts come from its endpoint record (api/endpoints.py), and are written once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask

from maas_server.api.endpoints import Endpoint, api_prefixes
from maas_server.api.routes import FAMILIES, endpoints
from maas_server.models import TASKS
from tests.server.accounting_support import word_app

SOURCE = Path(__file__).resolve().parents[2] / "maas_server"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    return word_app(tmp_path_factory.mktemp("endpoints"))


def _flask_routes(app: Flask) -> set[tuple[str, str, str]]:
    return {(rule.endpoint, rule.rule, verb.lower()) for rule in app.url_map.iter_rules()
            if rule.endpoint != "static" and not rule.endpoint.startswith("console.")  # pages, not the API
            for verb in (rule.methods or set()) - {"HEAD", "OPTIONS"}}


def test_every_flask_route_has_a_record_and_every_record_a_route(app: Flask) -> None:
    records = {(e.view, e.rule, e.verb) for e in endpoints()}
    assert _flask_routes(app) == records
    assert len(records) == len(endpoints())  # no record twice
    assert list(app.extensions["maas"].endpoints.values()) == endpoints()


def test_no_route_path_is_written_twice_in_the_server() -> None:
    source = "\n".join(path.read_text() for path in SOURCE.rglob("*.py"))
    for endpoint in endpoints():
        assert source.count(f'"{endpoint.path}"') == 1, endpoint.path


def test_flask_rules_follow_the_openapi_templates() -> None:
    by_path = {e.path: e for e in endpoints()}
    assert by_path["/models/{model}/generate"].rule == "/models/<path:model>/generate"  # hub ids hold a slash
    assert by_path["/v1/admin/keys/{key_id}"].rule == "/v1/admin/keys/<int:key_id>"
    for endpoint in endpoints():
        documented = {p["name"] for p in endpoint.parameters if p["in"] == "path"}
        assert documented == set(re.findall(r"\{(\w+)\}", endpoint.path)), endpoint.path


def test_the_api_prefixes_are_those_of_the_authenticated_records() -> None:
    assert api_prefixes(endpoints()) == ("/models/", "/v1/")
    public = {e.path for e in endpoints() if not e.authenticated}
    assert public == {"/health", "/ready", "/metrics", "/openapi.json"}


def test_personal_data_is_every_face_voice_pii_and_hugging_face_record() -> None:
    personal = {e.path for e in endpoints() if e.personal_data}
    assert personal == {"/v1/detect/faces", "/v1/faces/embeddings", "/v1/audio/transcriptions",
                        "/v1/audio/translations", "/v1/pii",
                        *(e.path for e in endpoints() if e.path.startswith("/models/"))}


def test_every_served_method_belongs_to_a_task_and_every_task_method_to_an_endpoint() -> None:
    offered = {method for spec in TASKS.values() for method in spec.methods}
    served = {method for e in endpoints() for method in e.serves}
    assert served <= offered
    # The methods a route reaches through a request field (explain: true) are not its `serves`.
    assert offered - served == {m for m in offered if m.name in ("explain-text", "explain-image", "find-speech")}


def test_admin_records_are_tagged_and_need_an_admin_key(app: Flask) -> None:
    admin: list[Endpoint] = [e for e in endpoints() if e.access == "admin"]
    assert admin and all(e.path.startswith("/v1/admin/") and e.tag == "admin" for e in admin)
    assert app.test_client().get("/v1/admin/keys").status_code == 403  # anonymous on loopback: never admin


def test_models_list_the_endpoints_their_records_serve(app: Flask) -> None:
    listed = app.test_client().get("/v1/models").json
    assert listed is not None
    by_task = {model["task"]: set(model["endpoints"]) for model in listed["data"]}
    assert by_task["embeddings"] == {"/v1/embeddings", "/v1/classify/text"}  # zero-shot labels by similarity


def test_each_family_has_its_own_blueprint() -> None:
    names = [family.blueprint.name for family in FAMILIES]
    assert len(names) == len(set(names))
