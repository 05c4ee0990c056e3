"""Structured output with the real SmolLM2 (135M): every generation parses and validates.

Ten sampled generations for each of five schemas (nested objects, arrays, enums, bounded
numbers, a $ref): 50 in all. The schemas close their objects (`additionalProperties: false`), as
OpenAI's strict mode and openai's `.parse()` do (the server closes objects that say nothing of other
keys by default, api/generation/structured.py). Their non-integer numbers bound their digits with `multipleOf`
(docs/api.md): no default bounds digits after the point, and sampled, SmolLM2 can write
`48.858333333...` until the end. How often the same model
writes valid JSON without the grammar is measured by benchmarks/structured_output.py
(docs/performance.md), not asserted here.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import jsonschema
import openai
import pydantic
import requests

from maas_server.testing import ServerProcess

SCHEMAS: dict[str, tuple[str, dict[str, Any]]] = {
    "person": ("Describe a famous scientist.", {
        "type": "object", "additionalProperties": False, "required": ["name", "born", "fields"],
        "properties": {"name": {"type": "string", "maxLength": 40},
                       "born": {"type": "integer", "minimum": 1000, "maximum": 2025},
                       "fields": {"type": "array", "items": {"type": "string", "maxLength": 20}, "minItems": 1,
                                  "maxItems": 3}}}),
    "review": ("Review a pizza you ate yesterday.", {
        "type": "object", "required": ["sentiment", "stars", "summary"], "additionalProperties": False,
        "properties": {"sentiment": {"enum": ["positive", "negative", "neutral"]},
                       "stars": {"type": "number", "minimum": 0, "maximum": 5, "multipleOf": 0.5},
                       "summary": {"type": "string", "maxLength": 80}}}),
    "order": ("Order lunch for two people.", {
        "type": "object", "required": ["items", "total"], "additionalProperties": False,
        "properties": {"items": {"type": "array", "maxItems": 3, "items": {
            "type": "object", "required": ["dish", "qty"], "additionalProperties": False,
            "properties": {"dish": {"type": "string", "maxLength": 20},
                           "qty": {"type": "integer", "minimum": 1, "maximum": 5}}}},
                       "total": {"type": "number", "minimum": 0, "multipleOf": 0.01}}}),
    "place": ("Where is the Eiffel Tower?", {
        "$defs": {"coord": {"type": "number", "minimum": -180, "maximum": 180, "multipleOf": 0.0001}},
        "type": "object", "required": ["city", "country", "lat", "lon"], "additionalProperties": False,
        "properties": {"city": {"type": "string", "maxLength": 30}, "country": {"type": "string", "maxLength": 30},
                       "lat": {"$ref": "#/$defs/coord"}, "lon": {"$ref": "#/$defs/coord"}}}),
    "yes-no": ("Is water wet? Answer with your confidence.", {
        "type": "object", "required": ["answer", "confidence"], "additionalProperties": False,
        "properties": {"answer": {"type": "boolean"},
                       "confidence": {"type": "number", "minimum": 0, "maximum": 1, "multipleOf": 0.01}}}),
}


def _generate(server_url: str, name: str, seed: int) -> list[dict[str, Any]]:
    prompt, schema = SCHEMAS[name]
    r = requests.post(f"{server_url}/v1/chat/completions", timeout=600, headers={"X-Request-Timeout": "300"}, json={
        "messages": [{"role": "user", "content": prompt}], "n": 5, "max_tokens": 160, "temperature": 0.7,
        "top_p": 0.9, "seed": seed,
        "response_format": {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}})
    assert r.status_code == 200, r.text
    return r.json()["choices"]  # type: ignore[no-any-return]


def _exact(text: str) -> Any:
    """JSON with decimals kept exact: as floats, -48.4689 is no multiple of 0.0001 to jsonschema."""
    return json.loads(text, parse_float=Decimal)


def test_fifty_sampled_generations_all_validate(server_url: str) -> None:
    calls = [(name, seed) for name in SCHEMAS for seed in (1, 2)]  # n=5 each: the default max_n is 8
    with ThreadPoolExecutor(3) as pool:  # three at a time share the decode batch
        answers = list(pool.map(lambda call: _generate(server_url, *call), calls))
    checked = 0
    for (name, _), choices in zip(calls, answers):
        for choice in choices:
            assert choice["finish_reason"] == "stop", (name, choice)  # 160 tokens are room enough here
            jsonschema.validate(_exact(choice["message"]["content"]), _exact(json.dumps(SCHEMAS[name][1])))
            checked += 1
    assert checked == 50


class Capital(pydantic.BaseModel):
    country: str
    capital: str
    is_largest_city: bool


def test_openai_parse_returns_the_pydantic_object(server_url: str) -> None:
    oai = openai.OpenAI(base_url=f"{server_url}/v1", api_key="unused", max_retries=0)
    parse = getattr(oai.chat.completions, "parse", None) or oai.beta.chat.completions.parse
    completion = parse(model="smollm2-135m-instruct", response_format=Capital, temperature=0, max_tokens=60,
                       messages=[{"role": "user", "content": "What is the capital of France?"}])
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, Capital) and parsed.capital == "Paris"


def _chain(levels: int) -> dict[str, Any]:
    defs = {f"d{i}": {"type": "object", "properties": {"x": {"$ref": f"#/$defs/d{i + 1}"}}} for i in range(levels)}
    defs[f"d{levels}"] = {"type": "integer", "minimum": 0, "maximum": 9}
    return {"$defs": defs, "$ref": "#/$defs/d0"}


def test_a_schema_that_overflowed_the_compiler_is_a_400_and_no_worker_restarts(server: ServerProcess) -> None:
    """A chain of 1,000 definitions overflows the grammar compiler's stack (SIGSEGV) unless refused, on chat and TGI's
    grammar; the deepest schema admitted (31 nested objects and an integer) compiles on the same worker."""
    workers = server.worker_pids()
    chat = {"model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": "x"}], "max_tokens": 8}
    for levels, status in [(1000, 400), (31, 200), (32, 400)]:
        r = requests.post(f"{server.url}/v1/chat/completions", timeout=120, json={**chat, "response_format": {
            "type": "json_schema", "json_schema": {"name": "deep", "schema": _chain(levels)}}})
        assert r.status_code == status, r.text
    r = requests.post(f"{server.url}/models/smollm2-135m-instruct", timeout=120, json={
        "inputs": "x", "parameters": {"max_new_tokens": 4, "grammar": {"type": "json", "value": _chain(1000)}}})
    assert r.status_code == 400 and r.json()["error"]["code"] == "schema_too_complex", r.text
    assert server.worker_pids() == workers and requests.get(f"{server.url}/ready", timeout=10).status_code == 200


CITY_TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def test_sampled_forced_calls_are_calls_that_parse_or_calls_cut_at_max_tokens(server_url: str) -> None:
    """Sampled, a forced call may be cut by max_tokens: every answer is still tool_calls, never content."""
    r = requests.post(f"{server_url}/v1/chat/completions", timeout=300, json={
        "model": "smollm2-135m-instruct", "n": 8, "seed": 3, "temperature": 1.0, "max_tokens": 40,
        "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
        "tools": [CITY_TOOL], "tool_choice": "required"})
    assert r.status_code == 200, r.text
    for choice in r.json()["choices"]:
        assert choice["message"]["content"] is None and choice["message"]["tool_calls"], choice
        if choice["finish_reason"] == "tool_calls":
            assert all(json.loads(c["function"]["arguments"]) for c in choice["message"]["tool_calls"])
        else:
            assert choice["finish_reason"] == "length", choice
