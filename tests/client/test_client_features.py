"""What the client adds over the wire shapes: typed tools, parsing, extra fields, request ids, reprs."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import responses
from pydantic import BaseModel

import maas_client as maas
from tests.client.client_support import BASE, MAAS_MODELS, sse


class Fact(BaseModel):
    place: str
    year: int


def reply(content: str | None, finish: str = "stop", **message: object) -> dict[str, object]:
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": content, **message},
                         "finish_reason": finish}]}


def test_a_pydantic_model_is_sent_as_its_json_schema_and_parsed_back(
    mocked: responses.RequestsMock, client: maas.Client
) -> None:
    mocked.post(f"{BASE}/v1/chat/completions", json=reply('{"place": "Paris", "year": 1889}'))
    assert client.chat_parse("When?", Fact, model="m") == Fact(place="Paris", year=1889)
    sent = json.loads(mocked.calls[0].request.body)["response_format"]
    assert sent == {"type": "json_schema", "json_schema": {"name": "Fact", "schema": Fact.model_json_schema(),
                                                           "strict": True}}


@pytest.mark.parametrize(("content", "finish", "hint"), [
    ('{"place": "Paris", "ye', "length", "raise max_tokens"),
    ('{"place": "Paris"}', "stop", "year: Field required"),
])
def test_a_reply_that_does_not_validate_says_why(
    mocked: responses.RequestsMock, client: maas.Client, content: str, finish: str, hint: str
) -> None:
    mocked.post(f"{BASE}/v1/chat/completions", json=reply(content, finish), headers={"X-Request-ID": "req-3"})
    with pytest.raises(maas.StructuredOutputError, match=hint) as caught:
        client.chat_parse("When?", Fact, model="m")
    assert (caught.value.text, caught.value.finish_reason, caught.value.request_id) == (content, finish, "req-3")


def test_tool_calls_are_typed_and_their_arguments_decoded(mocked: responses.RequestsMock, client: maas.Client) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    mocked.post(f"{BASE}/v1/chat/completions", json=reply(None, "tool_calls", tool_calls=[call]))
    tool = maas.Tool.define("get_weather", Fact, description="d")
    out = client.chat("Weather?", model="m", tools=[tool, {"type": "function", "function": {"name": "f"}}],
                      tool_choice={"type": "function", "function": {"name": "get_weather"}})
    assert out.tool_calls[0].arguments == {"city": "Oslo"} and out.text == ""
    sent = json.loads(mocked.calls[0].request.body)
    assert sent["tools"][0]["function"]["parameters"]["required"] == ["place", "year"]
    assert sent["tools"][1] == {"type": "function", "function": {"name": "f"}}
    assert sent["tool_choice"]["function"]["name"] == "get_weather"


def test_extra_body_is_merged_into_json_and_form_bodies(server: responses.RequestsMock, client: maas.Client) -> None:
    server.post(f"{BASE}/v1/embeddings", json={"data": [{"embedding": [1.0]}]})
    server.post(f"{BASE}/v1/classify/image", json={"data": [{"labels": []}]})
    client.embed("a", extra_body={"dimensions": 8, "encoding_format": "base64"})
    assert json.loads(server.calls[-1].request.body)["dimensions"] == 8
    assert json.loads(server.calls[-1].request.body)["encoding_format"] == "base64"
    client.classify_image(b"\x89PNG\r\n\x1a\n", extra_body={"top_k": 3, "explain": True})
    body = server.calls[-1].request.body
    assert b'name="top_k"\r\n\r\n3' in body and b'name="explain"\r\n\r\ntrue' in body


def test_every_result_carries_its_request_id(mocked: responses.RequestsMock, client: maas.Client) -> None:
    mocked.get(f"{BASE}/v1/models", json=MAAS_MODELS, headers={"X-Request-ID": "req-m"})
    mocked.get(f"{BASE}/v1/usage", json={"object": "usage", "key": None, "since": 0, "data": []})
    assert {info.request_id for info in client.models()} == {"req-m"}
    report = client.usage(since=datetime(2026, 1, 1, tzinfo=UTC))
    assert report.request_id == mocked.calls[-1].request.headers["X-Request-ID"]
    assert mocked.calls[-1].request.url.endswith("since=2026-01-01T00%3A00%3A00%2B00%3A00")


def test_iter_text_skips_the_role_only_first_chunk(mocked: responses.RequestsMock, client: maas.Client) -> None:
    def chunk(delta: dict[str, str]) -> dict[str, object]:
        return {"choices": [{"index": 0, "delta": delta}]}

    body = sse(chunk({"role": "assistant", "content": ""}), chunk({"content": "Hi"}), chunk({}))
    mocked.post(f"{BASE}/v1/chat/completions", body=body, content_type="text/event-stream")
    with client.chat("x", model="m", stream=True) as stream:
        assert list(stream.iter_text()) == ["Hi"]


def test_embeddings_repr_is_short() -> None:
    result = maas.Embeddings.model_validate({"model": "e", "data": [{"embedding": [0.5] * 384}] * 2})
    assert repr(result) == "Embeddings(model='e', shape=(2, 384), data=[[0.5000, 0.5000, 0.5000, ...], ...])"
