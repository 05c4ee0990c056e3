"""LiteLLM, unmodified, against the real server: chat, streaming, tools, response_format and embeddings.

LiteLLM reaches any OpenAI-compatible server through its `openai/` provider with `api_base`. Its model cost
map is read from the package (LITELLM_LOCAL_MODEL_COST_MAP), as on any machine without internet access:
otherwise importing it tries to fetch the map first.
"""

from __future__ import annotations

import json
import os

import pydantic
import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # after the setting above, which it reads at import

MODEL = "openai/smollm2-135m-instruct"
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
# For a free-text answer. Greedy, " Answer in one sentence." makes each token of "The capital of France is Paris."
# lead the next best by 0.86 logits or more; the bare question puts "The" only 0.08 ahead of "L" (no Paris follows).
IN_ONE_SENTENCE = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]


@pytest.fixture
def api(server_url: str) -> dict[str, str]:
    return {"api_base": f"{server_url}/v1", "api_key": "unused"}


def test_chat_and_its_stream_agree(api: dict[str, str]) -> None:
    whole = litellm.completion(model=MODEL, messages=IN_ONE_SENTENCE, max_tokens=12, temperature=0, **api)
    chunks = litellm.completion(model=MODEL, messages=IN_ONE_SENTENCE, max_tokens=12, temperature=0, stream=True,
                                **api)
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert "Paris" in whole.choices[0].message.content
    assert streamed == whole.choices[0].message.content
    assert whole.usage.completion_tokens > 0


WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city now.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def test_tools_return_a_call_with_valid_arguments(api: dict[str, str]) -> None:
    answer = litellm.completion(model=MODEL, messages=[{"role": "user", "content": "What is the weather in Paris?"}],
                                tools=[WEATHER], tool_choice="required", max_tokens=60, temperature=0, **api)
    choice = answer.choices[0]
    [call] = choice.message.tool_calls
    assert choice.finish_reason == "tool_calls" and call.function.name == "get_weather"
    assert isinstance(json.loads(call.function.arguments)["city"], str)


def test_twenty_sampled_forced_calls_are_each_a_call_user_code_can_read(api: dict[str, str]) -> None:
    """At temperature 1 a forced call may be cut by max_tokens: it is still `tool_calls` (finish "length"), never
    None, which LiteLLM user code indexes without a check; a call that stopped has arguments that parse."""
    answer = litellm.completion(model=MODEL, messages=[{"role": "user", "content": "What is the weather in Paris?"}],
                                tools=[WEATHER], tool_choice="required", max_tokens=24, temperature=1.0, n=4,
                                seed=11, **api)
    answers = [answer] + [litellm.completion(
        model=MODEL, messages=[{"role": "user", "content": "Weather in Rome, please."}], tools=[WEATHER],
        tool_choice="required", max_tokens=24, temperature=1.0, n=4, seed=seed, **api) for seed in (12, 13, 14, 15)]
    choices = [choice for a in answers for choice in a.choices]
    assert len(choices) == 20
    for choice in choices:
        call = choice.message.tool_calls[0]
        assert call.function.name == "get_weather" and not choice.message.content, choice
        if choice.finish_reason == "tool_calls":
            assert isinstance(json.loads(call.function.arguments)["city"], str)
        else:
            assert choice.finish_reason == "length", choice


class Capital(pydantic.BaseModel):
    country: str
    capital: str


def test_response_format_with_a_pydantic_model(api: dict[str, str]) -> None:
    answer = litellm.completion(model=MODEL, messages=QUESTION, response_format=Capital, max_tokens=60,
                                temperature=0, **api)
    parsed = Capital.model_validate_json(answer.choices[0].message.content)
    assert parsed.capital == "Paris"


def test_json_object_mode(api: dict[str, str]) -> None:
    answer = litellm.completion(model=MODEL, messages=QUESTION, response_format={"type": "json_object"},
                                max_tokens=40, temperature=0, **api)
    assert isinstance(json.loads(answer.choices[0].message.content), dict)


def test_embeddings(api: dict[str, str]) -> None:
    answer = litellm.embedding(model="openai/all-minilm-l6-v2", input=["a red car", "a blue boat"], **api)
    assert [len(item["embedding"]) for item in answer.data] == [384, 384]
