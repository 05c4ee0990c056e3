"""Schemathesis over /openapi.json against the WSGI app: no 5xx, and every answer as documented.

The app serves the tiny random-weight models of tests/tiny_models.py through the real loading
code, so generation (streamed too), embeddings, both classifications and entities really run. It requires
keys (auth mode `keys`) and the cases carry one, so they reach the models.

Each operation is tested with four sources of requests: the documented request examples
(streams among them), schemathesis's coverage cases (boundary values, missing and wrong-typed
fields, unexpected methods; deterministic), and valid and invalid requests Hypothesis generates
from a fixed seed, a bounded number of them, with no example database: a failure replays
anywhere. (schemathesis's own pytest loader, `from_fixture`, needs pytest's private
`Node._nodeid`, which pytest 9.2 no longer has; the strategies and coverage cases are public.)
"""

from __future__ import annotations

from collections.abc import Callable

import hypothesis
import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from maas_server.accounts import create_key
from maas_server.api.endpoints import Endpoint
from maas_server.api.routes import endpoints
from maas_server.app import create_app
from maas_server.settings import Settings
from tests.server.accounting_support import accounts_of
from tests.server.conftest import tiny_config

SEED = 20_261_201
# Generated cases per operation (examples are sent once each; coverage cases are as many as
# the schema's boundaries).
EXAMPLES = {GenerationMode.POSITIVE: 30, GenerationMode.NEGATIVE: 20}
SOURCES = ["examples", "coverage", GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
# No 5xx; status, content type, headers and body as documented; a 405 with Allow for undeclared
# methods; and every operation that declares the bearer key refuses the same request without it.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, unsupported_method, ignored_auth]


@pytest.fixture(scope="module")
def keyed_app(tmp_path_factory: pytest.TempPathFactory, tiny_gpt2: str, tiny_bert: str, tiny_bert_classifier: str,
              tiny_resnet: str, tiny_timm_weights: str, tiny_ner: str, tiny_pii: str) -> Flask:
    tmp = tmp_path_factory.mktemp("schemathesis")
    config = tiny_config(tmp, tiny_gpt2, tiny_bert, tiny_bert_classifier, tiny_resnet, tiny_timm_weights, tiny_ner,
                         tiny_pii)
    app = create_app(_short_generations(config).model_copy(update={"data_dir": tmp / "data", "auth": "keys"}))
    assert app.extensions["maas"].registry.wait_until_loaded(timeout=120)
    return app


def _short_generations(config: Settings) -> Settings:
    # The point is every code path, not long texts: a random-weight model rarely stops by itself.
    models = tuple(m.model_copy(update={"default_max_tokens": 8}) if m.task == "text-generation" else m
                   for m in config.models)
    return config.model_copy(update={"models": models, "max_tokens": 16})


@pytest.fixture(scope="module")
def api_schema(keyed_app: Flask) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_wsgi("/openapi.json", keyed_app)


@pytest.fixture(scope="module")
def auth(keyed_app: Flask) -> dict[str, str]:
    key, _ = create_key(accounts_of(keyed_app).store, "schemathesis")
    return {"Authorization": f"Bearer {key}"}  # replaces the made-up key each case carries


def _operations() -> list[tuple[str, str, str | GenerationMode]]:
    def applies(route: Endpoint, source: str | GenerationMode) -> bool:
        if source == "examples":
            return bool(route.examples)
        if source is GenerationMode.NEGATIVE:  # any string is a valid model name in a path: nothing to break
            return route.request is not None or any(p["in"] == "query" for p in route.parameters)
        return True

    return [(route.verb, route.path, source) for route in endpoints() for source in SOURCES if applies(route, source)]


@pytest.mark.parametrize("method, path, source", _operations())
def test_api_answers_as_documented_without_server_errors(api_schema: schemathesis.BaseSchema, auth: dict[str, str],
                                                         method: str, path: str, source: str | GenerationMode) -> None:
    operation = api_schema[path][method]

    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=auth, checks=CHECKS)

    if source == "examples":
        for example in api_schema.get_strategies_from_examples(operation):
            _generate(example, 1, check)  # each documented example once
    elif source == "coverage":
        config = api_schema.config.generation_for(operation=operation)
        for case in api_schema.iter_coverage_cases(operation, generation_modes=list(GenerationMode),
                                                   generation_config=config):
            check(case)
    elif isinstance(source, GenerationMode):
        _generate(operation.as_strategy(source), EXAMPLES[source], check)


def _generate(cases: st.SearchStrategy[schemathesis.Case], count: int,
              check: Callable[[schemathesis.Case], None]) -> None:
    """Run `check` on `count` cases drawn from `cases` with the fixed seed (and shrink a failure)."""
    settings = hypothesis.settings(max_examples=count, database=None, deadline=None,
                                   phases=[Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck))
    hypothesis.seed(SEED)(settings(hypothesis.given(case=cases)(check)))()
