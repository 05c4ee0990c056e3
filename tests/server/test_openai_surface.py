"""OpenAI's request surface: nulls mean "not given", standard fields are accepted or refused by name."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient

CHAT = {"model": "tiny-gpt2", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 2}


def _ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.json
    return response.json  # type: ignore[no-any-return]


def _refused(response: Any, param: str) -> str:
    assert response.status_code == 400, response.json
    error = response.json["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    return error["message"]  # type: ignore[no-any-return]


def test_chat_takes_null_for_every_optional_field_a_wrapper_sends(client: FlaskClient) -> None:
    nulls = dict.fromkeys(["temperature", "top_p", "n", "logprobs", "top_logprobs", "stop", "seed", "stream",
                           "stream_options", "user", "frequency_penalty", "presence_penalty", "logit_bias",
                           "max_completion_tokens", "response_format", "tools", "tool_choice", "store", "metadata",
                           "service_tier", "parallel_tool_calls", "reasoning_effort", "modalities", "audio"])
    answer = _ok(client.post("/v1/chat/completions", json={**CHAT, **nulls}))
    assert len(answer["choices"]) == 1 and answer["choices"][0]["logprobs"] is None  # n and logprobs: defaults


def test_completions_and_embeddings_take_nulls(client: FlaskClient) -> None:
    _ok(client.post("/v1/completions", json={"model": "tiny-gpt2", "prompt": "Hi", "max_tokens": 2,
                                             "temperature": None, "logprobs": None, "suffix": None, "echo": None,
                                             "best_of": None, "n": None}))
    answer = _ok(client.post("/v1/embeddings", json={"model": "tiny-embed", "input": "Hi", "encoding_format": None,
                                                     "dimensions": None, "user": None}))
    assert isinstance(answer["data"][0]["embedding"], list)


def test_a_null_model_is_the_default_model(client: FlaskClient) -> None:
    assert _ok(client.post("/v1/embeddings", json={"model": None, "input": "Hi"}))["model"]


def test_null_where_a_value_is_required_is_still_refused(client: FlaskClient) -> None:
    _refused(client.post("/v1/chat/completions", json={**CHAT, "messages": None}), "messages")
    _refused(client.post("/v1/completions", json={"prompt": None}), "prompt")


def test_unknown_fields_are_refused_by_name_even_when_null(client: FlaskClient) -> None:
    assert "Extra inputs" in _refused(client.post("/v1/chat/completions", json={**CHAT, "max_token": 5}),
                                      "max_token")
    _refused(client.post("/v1/chat/completions", json={**CHAT, "not_openai": None}), "not_openai")


def test_fields_that_change_nothing_here_are_accepted(client: FlaskClient) -> None:
    extras = {"store": True, "metadata": {"team": "a"}, "service_tier": "auto", "parallel_tool_calls": False,
              "reasoning_effort": "low", "modalities": ["text"], "prediction": {"type": "content", "content": "x"},
              "web_search_options": {}, "prompt_cache_key": "k", "safety_identifier": "u1", "verbosity": "low",
              "response_format": {"type": "text"}, "user": "someone"}
    _ok(client.post("/v1/chat/completions", json={**CHAT, **extras}))


def test_tools_with_tool_choice_none_are_not_offered(client: FlaskClient) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    _ok(client.post("/v1/chat/completions", json={**CHAT, "tools": [tool], "tool_choice": "none"}))


@pytest.mark.parametrize("extra, param, words", [
    ({"audio": {"voice": "alloy", "format": "wav"}}, "audio", "audio output is not supported"),
    ({"modalities": ["text", "audio"]}, "modalities.1", "'text'"),
    ({"response_format": {"type": "xml"}}, "response_format.type", "'json_schema'"),
    ({"functions": [{"name": "f"}]}, "functions", "deprecated"),
    ({"temperature": 3}, "temperature", "less than or equal to 2"),
])
def test_what_cannot_be_honoured_is_a_400_naming_it(client: FlaskClient, extra: dict[str, Any], param: str,
                                                    words: str) -> None:
    assert words in _refused(client.post("/v1/chat/completions", json={**CHAT, **extra}), param)


def test_embeddings_take_token_ids_in_the_models_vocabulary(client: FlaskClient) -> None:
    from transformers import AutoTokenizer

    registry = client.application.extensions["maas"].registry
    tokenizer = AutoTokenizer.from_pretrained(registry.get("tiny-embed").config.source)
    ids = tokenizer("hello world")["input_ids"]
    as_text = _ok(client.post("/v1/embeddings", json={"model": "tiny-embed", "input": "hello world"}))
    for given in (ids, [ids, ids]):
        answer = _ok(client.post("/v1/embeddings", json={"model": "tiny-embed", "input": given}))
        assert len(answer["data"]) == (1 if given is ids else 2)
        assert answer["data"][0]["embedding"] == pytest.approx(as_text["data"][0]["embedding"], abs=1e-5)
    outside = _refused(client.post("/v1/embeddings", json={"model": "tiny-embed", "input": [[len(tokenizer) + 5]]}),
                       "input")
    assert "vocabulary" in outside
    _refused(client.post("/v1/embeddings", json={"model": "tiny-embed", "input": [-1]}), "input")


def test_the_placeholder_model_names_mean_the_default_model(client: FlaskClient) -> None:
    for placeholder in ("dummy", "tgi"):
        answer = _ok(client.post("/v1/embeddings", json={"model": placeholder, "input": "Hi"}))
        assert answer["model"] != placeholder


@pytest.mark.parametrize("kind", ["json_object", "json"])  # "json": TGI's older name, still sent by its users
def test_tgis_json_object_with_a_schema_in_value_is_structured_output(client: FlaskClient, kind: str) -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
              "additionalProperties": False}
    answer = _ok(client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 30, "response_format": {
        "type": kind, "value": schema}}))
    assert json.loads(answer["choices"][0]["message"]["content"]) in ({"ok": True}, {"ok": False})


@pytest.mark.parametrize(("param", "neutral", "other"), [("top_k", [0, -1], 40), ("repetition_penalty", [1, 1.0], 1.2),
                                                         ("min_p", [0, 0.0], 0.05)])
def test_vllms_sampling_parameters_are_accepted_at_neutral_values_only(client: FlaskClient, param: str,
                                                                      neutral: list[float], other: float) -> None:
    for value in neutral:
        _ok(client.post("/v1/chat/completions", json={**CHAT, param: value}))
        _ok(client.post("/v1/completions", json={"model": "tiny-gpt2", "prompt": "Hi", "max_tokens": 2, param: value}))
    assert "not supported" in _refused(client.post("/v1/chat/completions", json={**CHAT, param: other}), param)


def _strict_json(text: str) -> Any:
    def refuse(name: str) -> float:
        raise AssertionError(f"{name} is not JSON: {text[:300]}")

    return json.loads(text, parse_constant=refuse)


def test_alternatives_a_grammar_rules_out_score_minus_9999_not_minus_infinity(client: FlaskClient) -> None:
    """With structured output, the alternatives the grammar masks have log-probability -inf: they are written as
    -9999.0 (as OpenAI and vLLM write them), never as `-Infinity`, which is not JSON."""
    only_yes = {"enum": ["yes"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "a", "schema": only_yes, "strict": True}}
    chat = {**CHAT, "max_tokens": 4, "logprobs": True, "top_logprobs": 5, "response_format": fmt}
    answer = client.post("/v1/chat/completions", json=chat)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    whole = _strict_json(answer.get_data(as_text=True))
    alternatives = [top["logprob"] for t in whole["choices"][0]["logprobs"]["content"] for top in t["top_logprobs"]]
    assert -9999.0 in alternatives and all(-9999.0 <= lp <= 0 for lp in alternatives), alternatives
    streamed = client.post("/v1/chat/completions", json={**chat, "stream": True}).get_data(as_text=True)
    events = [line[len("data: "):] for line in streamed.splitlines() if line.startswith("data: {")]
    assert events and all(_strict_json(event) for event in events)
    completion = client.post("/v1/completions", json={"model": "tiny-gpt2", "prompt": "Hi", "max_tokens": 3,
                                                      "logprobs": 5, "response_format": fmt})
    top = _strict_json(completion.get_data(as_text=True))["choices"][0]["logprobs"]["top_logprobs"]
    assert -9999.0 in [lp for alternatives_at in top for lp in alternatives_at.values()], top
    tgi = client.post("/models/tiny-gpt2", json={"inputs": "Hi", "parameters": {
        "max_new_tokens": 3, "details": True, "top_n_tokens": 5, "grammar": {"type": "json", "value": only_yes}}})
    tokens = _strict_json(tgi.get_data(as_text=True))[0]["details"]["top_tokens"]
    assert -9999.0 in [t["logprob"] for at in tokens for t in at], tokens
