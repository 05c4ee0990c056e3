"""POST /v1/responses on the tiny random-weight GPT-2: OpenAI's shapes for text, tools and streams."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from flask.testing import FlaskClient


def _create(client: FlaskClient, **body: Any) -> Any:
    return client.post("/v1/responses", json={"model": "tiny-gpt2", "max_output_tokens": 8, **body})


def _text(response: dict[str, Any]) -> str:
    return "".join(part["text"] for item in response["output"] if item["type"] == "message"
                   for part in item["content"] if part["type"] == "output_text")


def test_a_string_input_gives_a_response_with_output_text(client: FlaskClient) -> None:
    r = _create(client, input="Once upon a time", temperature=0, store=True, metadata={"a": "b"})
    assert r.status_code == 200, r.json
    response = r.json
    assert response["object"] == "response" and response["id"].startswith("resp")
    assert response["status"] in ("completed", "incomplete") and _text(response)
    usage = response["usage"]
    assert usage["output_tokens"] > 0 and usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    if response["status"] == "incomplete":
        assert response["incomplete_details"] == {"reason": "max_output_tokens"}


def test_instructions_and_messages_are_the_chat_messages(client: FlaskClient) -> None:
    as_messages = _create(client, temperature=0, instructions="Be brief.", input=[
        {"role": "user", "content": [{"type": "input_text", "text": "Hello"}]}]).json
    as_chat = client.post("/v1/chat/completions", json={"model": "tiny-gpt2", "max_tokens": 8, "temperature": 0,
                                                        "messages": [{"role": "system", "content": "Be brief."},
                                                                     {"role": "user", "content": "Hello"}]}).json
    assert _text(as_messages) == as_chat["choices"][0]["message"]["content"]


def test_a_stream_is_the_documented_event_sequence(client: FlaskClient) -> None:
    r = _create(client, input="Once upon a time", temperature=0, stream=True)
    events = [json.loads(e.removeprefix("data: ")) for e in r.get_data(as_text=True).split("\n\n")
              if e.startswith("data: {")]
    kinds = [e["type"] for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[-4:-1] == ["response.output_text.done", "response.content_part.done", "response.output_item.done"]
    assert kinds[-1] in ("response.completed", "response.incomplete")
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert deltas == events[-4]["text"] == _text(events[-1]["response"])
    assert [e["sequence_number"] for e in events] == list(range(1, len(events) + 1))
    # openai's types require `logprobs` on the text events (empty: none were asked for)
    assert all(e["logprobs"] == [] for e in events if e["type"].startswith("response.output_text."))


def test_text_format_json_schema_is_enforced(client: FlaskClient) -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
              "additionalProperties": False}
    r = _create(client, input="Is it?", max_output_tokens=40,
                text={"format": {"type": "json_schema", "name": "answer", "schema": schema, "strict": True}})
    jsonschema.validate(json.loads(_text(r.json)), schema)


@pytest.mark.parametrize("extra, param", [
    ({"previous_response_id": "resp_1"}, "previous_response_id"),
    ({"background": True}, "background"),
    ({"temperature": 5}, "temperature"),
    ({"input": None}, "input"),
])
def test_what_needs_state_or_is_invalid_is_a_400(client: FlaskClient, extra: dict[str, Any], param: str) -> None:
    r = _create(client, **{"input": "Hi", **extra})
    assert r.status_code == 400 and r.json["error"]["param"] == param, r.json
