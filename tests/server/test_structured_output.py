"""Structured output (`response_format`): constrained decoding inside the continuous-batching loop.

The tiny GPT-2 has random weights, so whatever it writes unconstrained is noise: output that
parses and validates here is the grammar's doing, not the model's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import torch
from flask.testing import FlaskClient

from maas_server.config import ModelConfig
from maas_server.models import load_model
from maas_server.models.generation_io import GenerationRequest

MOOD = {"type": "object", "additionalProperties": False, "required": ["mood", "count", "tags"], "properties": {
    "mood": {"enum": ["happy", "sad", "neutral"]},
    "count": {"type": "integer", "minimum": 0, "maximum": 9},
    "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 2}}}


def _format(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}


def _chat(client: FlaskClient, **extra: Any) -> Any:
    return client.post("/v1/chat/completions", json={
        "model": "tiny-gpt2", "messages": [{"role": "user", "content": "How are you?"}], "max_tokens": 48, **extra})


@pytest.mark.parametrize("seed", range(4))
def test_chat_output_follows_the_schema(client: FlaskClient, seed: int) -> None:
    r = _chat(client, response_format=_format(MOOD), seed=seed)
    assert r.status_code == 200, r.json
    choice = r.json["choices"][0]
    jsonschema.validate(json.loads(choice["message"]["content"]), MOOD)
    assert choice["finish_reason"] == "stop"


def test_each_of_n_choices_follows_the_schema_on_its_own(client: FlaskClient) -> None:
    r = _chat(client, response_format=_format(MOOD), n=3, temperature=1.0, seed=7)
    assert r.status_code == 200, r.json
    for choice in r.json["choices"]:
        jsonschema.validate(json.loads(choice["message"]["content"]), MOOD)


def test_json_object_mode_on_completions_gives_an_object(client: FlaskClient) -> None:
    schema_free = {"model": "tiny-gpt2", "prompt": "Data:", "max_tokens": 40, "temperature": 0,
                   "response_format": {"type": "json_object"}}
    r = client.post("/v1/completions", json=schema_free)
    assert r.status_code == 200, r.json
    choice = r.json["choices"][0]
    if choice["finish_reason"] == "stop":
        assert isinstance(json.loads(choice["text"]), dict)
    else:  # cut off: an object begun, never anything else
        assert choice["finish_reason"] == "length" and choice["text"].startswith("{")


def test_a_stream_carries_the_same_structured_text(client: FlaskClient) -> None:
    r = _chat(client, response_format=_format(MOOD), seed=3, stream=True)
    events = [line.removeprefix("data: ") for line in r.get_data(as_text=True).split("\n\n") if line]
    assert events[-1] == "[DONE]"
    text = "".join(json.loads(e)["choices"][0]["delta"].get("content") or "" for e in events[:-1]
                   if json.loads(e)["choices"])
    assert text == _chat(client, response_format=_format(MOOD), seed=3).json["choices"][0]["message"]["content"]
    jsonschema.validate(json.loads(text), MOOD)


def test_output_cut_by_max_tokens_says_length(client: FlaskClient) -> None:
    long = {"type": "object", "properties": {"story": {"type": "string", "minLength": 200}}, "required": ["story"]}
    r = _chat(client, response_format=_format(long), max_tokens=6)
    assert r.status_code == 200 and r.json["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize("response_format, words", [
    (_format({"not": {"type": "string"}}), "not"),
    (_format({"type": "object", "if": {"required": ["a"]}, "then": {"required": ["b"]}}), "if"),
    ({"type": "json_schema"}, "json_schema"),
    ({"type": "json_schema", "json_schema": {"name": "x"}}, "schema"),
    ({"type": "xml"}, "type"),
])
def test_what_cannot_be_enforced_is_a_400_naming_response_format(client: FlaskClient, response_format: Any,
                                                                 words: str) -> None:
    r = _chat(client, response_format=response_format)
    assert r.status_code == 400, r.json
    assert r.json["error"]["param"].startswith("response_format") and words in r.json["error"]["message"]


def test_rows_without_a_schema_decode_as_if_alone(tiny_gpt2: str, tmp_path: Path) -> None:
    model: Any = load_model(ModelConfig(name="g", task="text-generation", source=tiny_gpt2), "cpu", torch.float32,
                            tmp_path)
    plain = GenerationRequest(prompt="Once upon a time", max_tokens=12, temperature=0)
    structured = GenerationRequest(prompt="Data:", max_tokens=12, temperature=0, json_schema=json.dumps(MOOD))
    [alone] = model.run([model.prepare(plain)])
    together = model.run([model.prepare(plain), model.prepare(structured)])
    assert together[0].choices[0].text == alone.choices[0].text
    assert together[1].choices[0].text.startswith('{"mood": ')


def test_a_schema_too_big_to_compile_between_steps_is_a_400(client: FlaskClient) -> None:
    big = {"enum": [f"value number {i}" for i in range(10_000)]}  # ~190 KB: compiled while streams wait
    r = _chat(client, response_format=_format(big))
    assert r.status_code == 400 and "limit of 100000 bytes" in r.json["error"]["message"], r.json
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {
        "x": big}}}}]
    r = _chat(client, tools=tools, tool_choice="required")
    assert r.status_code == 400 and r.json["error"]["param"] == "tools", r.json


def _chain(levels: int) -> dict[str, Any]:
    """Objects nested `levels` deep through a chain of definitions: small JSON, deep for the compiler."""
    defs = {f"d{i}": {"type": "object", "properties": {"x": {"$ref": f"#/$defs/d{i + 1}"}}} for i in range(levels)}
    defs[f"d{levels}"] = {"type": "integer", "minimum": 0, "maximum": 9}
    return {"$defs": defs, "$ref": "#/$defs/d0"}


def test_a_schema_at_the_depth_limit_compiles_and_one_past_it_is_a_400(client: FlaskClient) -> None:
    """32 levels (the default max_schema_depth) are served; 33, and the ~1,000 that overflow the grammar
    compiler's stack and kill the process, are refused before compiling, on every route that takes a schema."""
    r = _chat(client, response_format=_format(_chain(31)), max_tokens=64)  # 31 objects and the integer: compiled
    assert r.status_code == 200, r.json
    for levels in (32, 1000):
        r = _chat(client, response_format=_format(_chain(levels)))
        assert r.status_code == 400 and r.json["error"]["code"] == "schema_too_complex", r.json
        assert r.json["error"]["param"] == "response_format" and "max_schema_depth" in r.json["error"]["message"]
    tools = [{"type": "function", "function": {"name": "f", "parameters": _chain(1000)}}]
    r = _chat(client, tools=tools, tool_choice="required")
    assert r.status_code == 400 and r.json["error"]["param"] == "tools", r.json
    as_text = "[" * 40_000 + "]" * 40_000  # TGI takes the grammar as a string too: nested past any parser
    r = client.post("/models/tiny-gpt2", json={"inputs": "x", "parameters": {
        "max_new_tokens": 2, "grammar": {"type": "json", "value": as_text}}})
    assert r.status_code == 400 and r.json["error"]["param"] == "parameters.grammar", r.json


_COMPILE_ON_A_SMALL_STACK = """
import sys, threading
from transformers import AutoTokenizer
from maas_server.models.structured import JsonGrammars
grammars = JsonGrammars(AutoTokenizer.from_pretrained(sys.argv[1]))
threading.stack_size(512 * 1024)  # a request thread with a small stack: ~60 levels would overflow it
thread = threading.Thread(target=lambda: grammars.compile(sys.stdin.read()))
thread.start()
thread.join()
"""


def test_the_deepest_schema_a_config_may_admit_compiles_whatever_the_callers_stack(tiny_gpt2: str) -> None:
    """max_schema_depth may be raised to 200; such a schema compiles on the compiler's own large stack,
    even when the request thread's stack is small (compiled there, it kills the process: SIGSEGV)."""
    schema = json.dumps(_chain(200))
    done = subprocess.run([sys.executable, "-c", _COMPILE_ON_A_SMALL_STACK, tiny_gpt2], input=schema, text=True,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize(("schema", "limit"), [
    ({"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(1001)}}, "max_schema_properties"),
    ({"enum": list(range(1001))}, "max_schema_enum"),
    ({"type": "string", "pattern": "a" * 1001}, "max_schema_pattern"),
])
def test_schema_limits_are_400s_naming_the_limit(client: FlaskClient, schema: dict[str, Any], limit: str) -> None:
    r = _chat(client, response_format=_format(schema))
    assert r.status_code == 400 and r.json["error"]["code"] == "schema_too_complex", r.json
    assert limit in r.json["error"]["message"]


OPEN = {"type": "object", "required": ["count"], "properties": {"count": {"type": "integer"}}}


@pytest.mark.parametrize("seed", range(4))
def test_objects_that_say_nothing_of_other_keys_are_closed_and_numbers_bounded(client: FlaskClient,
                                                                               seed: int) -> None:
    """Random weights left free add keys and digits until max_tokens; with the defaults every answer ends."""
    r = _chat(client, response_format=_format(OPEN), seed=seed, temperature=1.0, max_tokens=40)
    choice = r.json["choices"][0]
    assert choice["finish_reason"] == "stop", choice
    answer = json.loads(choice["message"]["content"])
    assert list(answer) == ["count"] and abs(answer["count"]) < 10**15


def test_what_a_schema_says_of_other_keys_and_bounds_is_kept() -> None:
    from maas_server.api.generation.structured import DEFAULT_MAX_PROPERTIES, MAX_MAGNITUDE, _with_ends

    assert _with_ends(OPEN) == {**OPEN, "additionalProperties": False, "properties": {
        "count": {"type": "integer", "maximum": MAX_MAGNITUDE, "minimum": -MAX_MAGNITUDE}}}
    said = {"type": "object", "additionalProperties": True, "properties": {
        "n": {"type": "number", "exclusiveMinimum": 0}, "m": {"type": "object", "maxProperties": 3}}}
    assert _with_ends(said) == {**said, "maxProperties": DEFAULT_MAX_PROPERTIES, "properties": {
        "n": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_MAGNITUDE},
        "m": {"type": "object", "maxProperties": 3}}}
    assert _with_ends({"type": "object"}) == {"type": "object", "maxProperties": DEFAULT_MAX_PROPERTIES}
    beyond = {"type": "integer", "minimum": 10**16}  # a default bound below the schema's own would leave no answer
    assert _with_ends(beyond) == beyond
