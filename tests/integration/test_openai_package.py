"""The official `openai` package, pointed at our server, works unmodified."""

from __future__ import annotations

import json
import tomllib
from importlib import resources
from typing import Any

import openai
import pytest


@pytest.fixture
def oai(server_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server_url}/v1", api_key="unused", max_retries=0)


def test_openai_chat(oai: openai.OpenAI) -> None:
    # Greedy, " Answer in one sentence." makes each token of "The capital of France is Paris." lead the next best
    # by 0.86 logits or more; the bare question puts "The" only 0.08 ahead of "L" (an answer without Paris).
    question = "What is the capital of France? Answer in one sentence."
    reply = oai.chat.completions.create(model="smollm2-135m-instruct", temperature=0, max_tokens=30,
                                        messages=[{"role": "user", "content": question}])
    assert "Paris" in (reply.choices[0].message.content or "")
    assert reply.usage is not None and reply.usage.completion_tokens > 0


def test_openai_chat_stream_and_logprobs(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(model="smollm2-135m-instruct", max_tokens=10, stream=True, logprobs=True,
                                         top_logprobs=2, messages=[{"role": "user", "content": "Say hello"}],
                                         stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and chunks[-1].usage is not None
    assert any(c.choices and c.choices[0].logprobs and c.choices[0].logprobs.content for c in chunks)


def test_openai_completion_with_stop_and_seed(oai: openai.OpenAI) -> None:
    a = oai.completions.create(model="smollm2-135m-instruct", prompt="One, two, three,", max_tokens=20, seed=7,
                               temperature=0.8, stop=["\n"], logprobs=2)
    b = oai.completions.create(model="smollm2-135m-instruct", prompt="One, two, three,", max_tokens=20, seed=7,
                               temperature=0.8, stop=["\n"], logprobs=2)
    assert a.choices[0].text == b.choices[0].text and "\n" not in a.choices[0].text
    assert a.choices[0].logprobs is not None and a.choices[0].logprobs.tokens


def test_openai_completion_stream(oai: openai.OpenAI) -> None:
    stream = oai.completions.create(model="smollm2-135m-instruct", prompt="Once upon a time", max_tokens=12,
                                    stream=True, temperature=0)
    pieces = [c.choices[0].text for c in stream if c.choices]
    assert len(pieces) >= 3


def test_openai_embeddings_default_base64(oai: openai.OpenAI) -> None:
    result = oai.embeddings.create(model="all-minilm-l6-v2", input=["hello", "world"])  # the package asks for base64
    assert len(result.data) == 2 and len(result.data[0].embedding) == 384
    assert result.usage.prompt_tokens > 0


def test_openai_models_list(oai: openai.OpenAI) -> None:
    ids = {m.id for m in oai.models.list()}
    configured = tomllib.loads(resources.files("maas_server").joinpath("default_config.toml").read_text())
    assert ids == {model["name"] for model in configured["models"]}  # every default model, and no other
    assert {"smollm2-135m-instruct", "all-minilm-l6-v2", "whisper-tiny.en", "pp-ocrv6"} <= ids


def test_openai_errors_map(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        oai.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError):
        oai.chat.completions.create(model="smollm2-135m-instruct", messages=[{"role": "user", "content": "x"}],
                                    temperature=5)


WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 40}},
                   "required": ["city"], "additionalProperties": False}}}


def test_openai_tool_call_loop_end_to_end(oai: openai.OpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = oai.chat.completions.create(model="smollm2-135m-instruct", messages=messages, tools=[WEATHER_TOOL],
                                        tool_choice="required", temperature=0, max_tokens=60)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather" and "city" in json.loads(call.function.arguments)
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": '{"weather": "sunny", "celsius": 21}'}]
    final = oai.chat.completions.create(model="smollm2-135m-instruct", messages=messages, tools=[WEATHER_TOOL],
                                        temperature=0, max_tokens=40)
    assert final.choices[0].message.content  # the model answers from the tool's result


def test_openai_null_parameters(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(model="smollm2-135m-instruct", max_tokens=5,
                                        messages=[{"role": "user", "content": "Hi"}],
                                        extra_body={"temperature": None, "top_p": None, "n": None, "logprobs": None})
    assert reply.choices[0].message.content is not None


def test_openai_responses_create_plain_and_streamed(oai: openai.OpenAI) -> None:
    response = oai.responses.create(model="smollm2-135m-instruct", input="What is the capital of France?",
                                    instructions="Answer in one sentence.", temperature=0, max_output_tokens=30)
    assert "Paris" in response.output_text and response.usage is not None
    with oai.responses.stream(model="smollm2-135m-instruct", input="What is the capital of France?",
                              instructions="Answer in one sentence.", temperature=0, max_output_tokens=30) as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == response.output_text
