"""Tool calls on /v1/chat/completions, in OpenAI's shapes, on the tiny random-weight GPT-2.

With tool_choice "required" or a named function the calls are enforced by the grammar, so even
random weights must produce valid calls; "auto" depends on the model, so here it is checked only
for its shape (the real model's calls: tests/integration/test_tools_and_responses.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Literal

import jsonschema
import pytest
from flask.testing import FlaskClient
from pydantic import BaseModel, Field

from maas_server.app import create_app
from maas_server.models.tool_prompt import with_tools_in_text
from maas_server.settings import load_settings
from tests import tiny_models

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city now",
    "parameters": {"type": "object", "additionalProperties": False, "required": ["city", "unit"], "properties": {
        "city": {"enum": ["Paris", "Rome", "Oslo"]}, "unit": {"enum": ["celsius", "fahrenheit"]}}}}}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {
    "type": "object", "additionalProperties": False, "required": ["zone"],
    "properties": {"zone": {"enum": ["UTC", "CET"]}}}}}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlaskClient]:
    """A tiny GPT-2 with room for the tools' instructions (the shared one stops at 128 tokens)."""
    folder = tmp_path_factory.mktemp("tools")
    source = tiny_models.gpt2(folder / "gpt2", context=2048)
    app = create_app(load_settings({"data_dir": folder / "data"}, file={
        "server": {"cache_dir": str(folder / "cache")},
        "models": [{"name": "tiny-gpt2", "task": "text-generation", "source": source}]}))
    assert app.extensions["maas"].registry.wait_until_loaded(timeout=60)
    yield app.test_client()


def _chat(client: FlaskClient, **extra: Any) -> Any:
    return client.post("/v1/chat/completions", json={"model": "tiny-gpt2", "messages": ASK, "max_tokens": 150,
                                                     "seed": 1, **extra})


def _arguments_follow_the_schema(call: dict[str, Any]) -> None:
    tool = {"get_weather": WEATHER, "get_time": TIME}[call["function"]["name"]]
    jsonschema.validate(json.loads(call["function"]["arguments"]), tool["function"]["parameters"])


@pytest.mark.parametrize("seed", range(3))
def test_required_gives_valid_calls_of_the_given_functions(client: FlaskClient, seed: int) -> None:
    # One call per answer: random weights given room for more calls keep adding them until max_tokens.
    r = _chat(client, tools=[WEATHER, TIME], tool_choice="required", parallel_tool_calls=False, seed=seed)
    assert r.status_code == 200, r.json
    choice = r.json["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    for call in choice["message"]["tool_calls"]:
        assert call["type"] == "function" and call["id"].startswith("call-")
        _arguments_follow_the_schema(call)


def test_a_named_function_is_the_one_called_once(client: FlaskClient) -> None:
    r = _chat(client, tools=[WEATHER, TIME], tool_choice={"type": "function", "function": {"name": "get_time"}})
    [call] = r.json["choices"][0]["message"]["tool_calls"]
    assert call["function"]["name"] == "get_time"
    _arguments_follow_the_schema(call)


def test_with_parallel_calls_allowed_every_finished_answer_is_calls(client: FlaskClient) -> None:
    for seed in range(3):
        choice = _chat(client, tools=[WEATHER, TIME], tool_choice="required", max_tokens=200,
                       seed=seed).json["choices"][0]
        if choice["finish_reason"] == "length":  # random weights may add calls until the end
            assert choice["message"]["content"].startswith("[{")
            continue
        assert choice["finish_reason"] == "tool_calls"
        for call in choice["message"]["tool_calls"]:
            _arguments_follow_the_schema(call)


def test_auto_answers_with_text_or_calls_in_openai_shape(client: FlaskClient) -> None:
    r = _chat(client, tools=[WEATHER], tool_choice="auto")
    choice = r.json["choices"][0]
    if choice["finish_reason"] == "tool_calls":
        assert choice["message"]["content"] is None and choice["message"]["tool_calls"]
    else:  # random weights: almost surely text
        assert isinstance(choice["message"]["content"], str) and "tool_calls" not in choice["message"]


def test_tool_choice_none_offers_nothing(client: FlaskClient) -> None:
    r = _chat(client, tools=[WEATHER], tool_choice="none", max_tokens=5)
    assert r.status_code == 200 and "tool_calls" not in r.json["choices"][0]["message"]


def test_a_stream_with_tools_sends_the_calls_in_openai_chunks(client: FlaskClient) -> None:
    r = _chat(client, tools=[WEATHER], tool_choice="required", parallel_tool_calls=False, stream=True,
              stream_options={"include_usage": True})
    events = [json.loads(e.removeprefix("data: ")) for e in r.get_data(as_text=True).split("\n\n")
              if e.startswith("data: {")]
    deltas = [e["choices"][0] for e in events if e["choices"]]
    assert deltas[0]["delta"]["role"] == "assistant"
    [call] = deltas[0]["delta"]["tool_calls"]
    assert call["index"] == 0 and call["function"]["name"] == "get_weather"
    _arguments_follow_the_schema(call)
    assert deltas[-1]["finish_reason"] == "tool_calls" and events[-1]["usage"]["completion_tokens"] > 0


def test_a_follow_up_turn_with_calls_and_results_is_accepted(client: FlaskClient) -> None:
    messages = [*ASK, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temperature": 21}'}]
    r = client.post("/v1/chat/completions", json={"model": "tiny-gpt2", "messages": messages, "tools": [WEATHER],
                                                  "max_tokens": 5})
    assert r.status_code == 200, r.json


def test_the_fallback_prompt_writes_tools_calls_and_results_as_text() -> None:
    messages = [{"role": "system", "content": "Be brief."}, *ASK,
                {"role": "assistant", "content": "", "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "get_weather",
                                                                  "arguments": '{"city": "Paris"}'}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "21 C"}]
    turns = with_tools_in_text(messages, [WEATHER], required=False)
    assert turns[0]["role"] == "system" and turns[0]["content"].startswith("Be brief.")
    assert '"name": "get_weather"' in turns[0]["content"] and "JSON array" in turns[0]["content"]
    assert json.loads(turns[2]["content"]) == [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    assert turns[3] == {"role": "user", "content": "Result of call c1: 21 C"}


@pytest.mark.parametrize("extra, words", [
    ({"tool_choice": "required"}, "needs tools"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "not among the tools"),
    ({"functions": [{"name": "f"}]}, "deprecated"),
    ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "pattern"),
])
def test_malformed_tool_requests_are_400(client: FlaskClient, extra: dict[str, Any], words: str) -> None:
    r = _chat(client, **extra)
    assert r.status_code == 400 and words in r.json["error"]["message"], r.json


def test_a_parameters_schema_that_cannot_be_enforced_is_a_400_naming_tools(client: FlaskClient) -> None:
    odd = {"type": "function", "function": {"name": "f", "parameters": {"not": {"type": "object"}}}}
    r = _chat(client, tools=[odd], tool_choice="required")
    assert r.status_code == 400 and r.json["error"]["param"] == "tools" and "not" in r.json["error"]["message"]


def test_a_tool_message_needs_its_call_id(client: FlaskClient) -> None:
    r = client.post("/v1/chat/completions", json={"model": "tiny-gpt2", "max_tokens": 2, "messages": [
        *ASK, {"role": "tool", "content": "21 C"}]})
    assert r.status_code == 400 and "tool_call_id" in r.json["error"]["message"]


def test_the_responses_api_gives_a_function_call_item(client: FlaskClient) -> None:
    tool = {"type": "function", "name": "get_time", "parameters": {
        "type": "object", "properties": {"zone": {"enum": ["UTC", "CET"]}}, "required": ["zone"],
        "additionalProperties": False}}
    r = client.post("/v1/responses", json={"model": "tiny-gpt2", "input": "Time?", "tools": [tool],
                                          "tool_choice": "required", "parallel_tool_calls": False,
                                          "max_output_tokens": 150})
    [item] = r.json["output"]
    assert item["type"] == "function_call" and item["name"] == "get_time" and item["call_id"]
    assert json.loads(item["arguments"])["zone"] in ("UTC", "CET")


class City(BaseModel):
    name: Literal["Paris", "Rome", "Oslo"]
    country: Literal["FR", "IT", "NO"]


class Trip(BaseModel):
    """Two nested models: pydantic writes them as `$defs` and `$ref`s, as openai.pydantic_function_tool does."""

    start: City
    end: City


class Place(BaseModel):  # another tool's `City`-named definition, different from Trip's
    city: Literal["Lyon"]


class Tree(BaseModel):
    """A recursive model: its schema refers to itself."""

    label: Literal["a", "b"]
    children: list[Tree] = Field(max_length=2)


def _tool(name: str, model: type[BaseModel]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": model.model_json_schema()}}


NESTED_TOOLS = {"plan_trip": Trip, "visit": Place, "draw_tree": Tree}


def _valid_nested_call(call: dict[str, Any]) -> None:
    model = NESTED_TOOLS[call["function"]["name"]]
    model.model_validate_json(call["function"]["arguments"])  # the tool's own $defs and $refs resolve


@pytest.mark.parametrize("tool_choice", ["required", {"type": "function", "function": {"name": "plan_trip"}}])
def test_tools_whose_parameters_use_defs_and_refs_get_valid_calls(client: FlaskClient, tool_choice: Any) -> None:
    tools = [_tool(name, model) for name, model in NESTED_TOOLS.items()]
    assert "$defs" in tools[0]["function"]["parameters"] and "$ref" in json.dumps(tools[2]["function"]["parameters"])
    for seed in range(3):
        r = _chat(client, tools=tools, tool_choice=tool_choice, parallel_tool_calls=False, seed=seed, max_tokens=300)
        assert r.status_code == 200, r.json
        choice = r.json["choices"][0]
        assert choice["finish_reason"] == "tool_calls", choice
        [call] = choice["message"]["tool_calls"]
        _valid_nested_call(call)
        if isinstance(tool_choice, dict):
            assert call["function"]["name"] == "plan_trip"


def test_a_recursive_tool_schema_is_followed_in_a_stream_and_on_the_responses_api(client: FlaskClient) -> None:
    r = _chat(client, tools=[_tool("draw_tree", Tree)], tool_choice="required", parallel_tool_calls=False,
              stream=True, max_tokens=300)
    events = [json.loads(line[6:]) for line in r.get_data(as_text=True).splitlines()
              if line.startswith("data: {")]
    deltas = [e["choices"][0] for e in events if e["choices"]]
    arguments = "".join(call["function"].get("arguments") or "" for d in deltas
                        for call in d["delta"].get("tool_calls") or [])
    assert deltas[-1]["finish_reason"] == "tool_calls", deltas[-1]
    Tree.model_validate_json(arguments)
    tool = {"type": "function", "name": "plan_trip", "parameters": Trip.model_json_schema()}
    r = client.post("/v1/responses", json={"model": "tiny-gpt2", "input": "Trip?", "tools": [tool],
                                          "tool_choice": "required", "parallel_tool_calls": False,
                                          "max_output_tokens": 300})
    assert r.status_code == 200, r.json
    [item] = r.json["output"]
    assert item["type"] == "function_call" and item["name"] == "plan_trip"
    Trip.model_validate_json(item["arguments"])


@pytest.mark.parametrize("max_tokens", [1, 8, 24])
def test_a_forced_call_cut_by_max_tokens_is_still_a_call(client: FlaskClient, max_tokens: int) -> None:
    """As OpenAI answers: `tool_calls` with the arguments as far as they were written, `finish_reason: length`;
    never the call's JSON as `content`, where a tool user finds nothing."""
    r = _chat(client, tools=[WEATHER], tool_choice="required", max_tokens=max_tokens)
    choice = r.json["choices"][0]
    assert choice["finish_reason"] == "length" and choice["message"]["content"] is None, choice
    [call] = choice["message"]["tool_calls"]  # one tool offered: the call is known before its name is written
    assert call["function"]["name"] == "get_weather" and call["id"]
    assert '{"city": "'.startswith(call["function"]["arguments"][:10])  # a prefix of the grammar's arguments
    streamed = _chat(client, tools=[WEATHER], tool_choice="required", max_tokens=max_tokens, stream=True)
    events = [json.loads(line[6:]) for line in streamed.get_data(as_text=True).splitlines()
              if line.startswith("data: {")]
    deltas = [e["choices"][0] for e in events if e["choices"]]
    assert [c["function"]["name"] for d in deltas for c in d["delta"].get("tool_calls") or []] == ["get_weather"]
    assert deltas[-1]["finish_reason"] == "length" and not any(d["delta"].get("content") for d in deltas)


def test_a_cut_forced_call_on_the_responses_api_is_an_incomplete_function_call(client: FlaskClient) -> None:
    tool = {"type": "function", "name": "get_time", "parameters": TIME["function"]["parameters"]}
    r = client.post("/v1/responses", json={"model": "tiny-gpt2", "input": "Time?", "tools": [tool],
                                          "tool_choice": "required", "max_output_tokens": 8})
    body = r.json
    assert body["status"] == "incomplete" and body["incomplete_details"] == {"reason": "max_output_tokens"}
    [item] = body["output"]
    assert item["type"] == "function_call" and item["name"] == "get_time" and item["status"] == "incomplete"
    assert body["usage"]["input_tokens_details"] == {"cached_tokens": 0, "cache_write_tokens": 0}


def test_call_arguments_nested_past_the_limit_in_a_conversation_are_a_400(client: FlaskClient) -> None:
    deep = "[" * 50_000 + "]" * 50_000  # parsed later, when the conversation is written into the prompt
    for arguments, status in [(deep, 400), ("[" * 32 + "]" * 32, 200), ("not json", 200)]:
        messages = [*ASK, {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": arguments}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "21 C"}]
        r = client.post("/v1/chat/completions", json={"model": "tiny-gpt2", "messages": messages,
                                                      "tools": [WEATHER], "max_tokens": 2})
        assert r.status_code == status, (arguments[:40], r.json)
    r = client.post("/v1/responses", json={"model": "tiny-gpt2", "max_output_tokens": 2, "input": [
        {"type": "function_call", "call_id": "c", "name": "get_weather", "arguments": deep},
        {"type": "function_call_output", "call_id": "c", "output": "21 C"}]})
    assert r.status_code == 400 and r.json["error"]["param"] == "input", r.json
