"""Hugging Face's inference shapes under /models/NAME (api/hf/inference.py) with the tiny models: which task a call
is, TGI's and TEI's routes, and the 4xx for what this server cannot honour. The real client against the
real models is tests/integration/test_huggingface_hub.py."""

from __future__ import annotations

import base64
import io
import json

import pytest
from flask.testing import FlaskClient
from PIL import Image


def _png(size: tuple[int, int] = (40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def _events(body: bytes) -> list[dict]:
    return [json.loads(line[len("data: "):]) for line in body.decode().splitlines() if line.startswith("data: ")]


def test_text_generation_answers_a_list_of_one_and_generate_the_object(client: FlaskClient) -> None:
    body = {"inputs": "Hello", "parameters": {"max_new_tokens": 4, "details": True}}
    listed = client.post("/models/tiny-gpt2", json=body)
    single = client.post("/models/tiny-gpt2/generate", json=body)
    assert listed.status_code == single.status_code == 200
    assert listed.json == [single.json]  # greedy without do_sample or temperature: the same text twice
    details = single.json["details"]
    assert details["finish_reason"] == "length" and details["generated_tokens"] == 4 and details["seed"] is None
    assert [t["id"] >= 0 for t in details["tokens"]] == [True] * 4 and details["prefill"] == []


def test_generate_stream_has_no_done_and_ends_with_the_text(client: FlaskClient) -> None:
    body = {"inputs": "Hello", "parameters": {"max_new_tokens": 5, "return_full_text": True}}
    streamed = client.post("/models/tiny-gpt2/generate_stream", json=body)
    whole = client.post("/models/tiny-gpt2/generate", json=body).json["generated_text"]
    assert b"[DONE]" not in streamed.data
    events = _events(streamed.data)
    assert [e["index"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["generated_text"] == whole == "Hello" + "".join(e["token"]["text"] for e in events)
    assert events[-1]["details"]["generated_tokens"] == 5 and all(e["details"] is None for e in events[:-1])


def test_stream_true_at_the_root_streams(client: FlaskClient) -> None:
    answer = client.post("/models/tiny-gpt2", json={"inputs": "Hi", "stream": True,
                                                    "parameters": {"max_new_tokens": 3}})
    assert answer.mimetype == "text/event-stream" and _events(answer.data)[-1]["details"]["generated_tokens"] == 3


@pytest.mark.parametrize(("parameters", "param"), [
    ({"repetition_penalty": 1.2}, "parameters.repetition_penalty"),
    ({"top_k": 10}, "parameters.top_k"),
    ({"watermark": True}, "parameters.watermark"),
    ({"decoder_input_details": True}, "parameters.decoder_input_details"),
    ({"grammar": {"type": "regex", "value": "a+"}}, "parameters.grammar.type"),
    ({"max_new_tokens": 10_000}, "parameters.max_new_tokens"),
    ({"temperature": 0}, "parameters.temperature"),
    ({"bogus": 1}, "parameters.bogus"),
])
def test_what_cannot_be_honoured_is_a_400_naming_it(client: FlaskClient, parameters: dict, param: str) -> None:
    answer = client.post("/models/tiny-gpt2", json={"inputs": "Hi", "parameters": parameters})
    assert answer.status_code == 400 and answer.json["error"]["param"] == param


def test_seeds_take_torchs_range_on_tgi_and_openai_routes(client: FlaskClient) -> None:
    """A seed is 0..2^64-1 on TGI's routes (its u64), and -2^63..2^64-1 on /v1 (what torch.Generator takes): one
    past either end is a 400 naming it, never a 500 from the generator."""
    sampled = {"max_new_tokens": 2, "do_sample": True}
    for seed in (0, 2**64 - 1):
        answer = client.post("/models/tiny-gpt2", json={"inputs": "Hi", "parameters": {**sampled, "seed": seed}})
        assert answer.status_code == 200 and answer.json[0]["generated_text"] is not None, answer.json
    for seed in (-1, 2**64, 10**30):
        for url in ("/models/tiny-gpt2", "/models/tiny-gpt2/generate", "/models/tiny-gpt2/generate_stream"):
            answer = client.post(url, json={"inputs": "Hi", "parameters": {**sampled, "seed": seed}})
            assert answer.status_code == 400 and answer.json["error"]["param"] == "parameters.seed", (url, seed)
    chat = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, "temperature": 1.0}
    for seed in (-(2**63), 2**64 - 1):
        assert client.post("/v1/chat/completions", json={**chat, "seed": seed}).status_code == 200, seed
    for seed in (-(2**63) - 1, 2**64):
        answer = client.post("/v1/chat/completions", json={**chat, "seed": seed})
        assert answer.status_code == 400 and answer.json["error"]["param"] == "seed", (seed, answer.json)


def test_neutral_values_of_unsupported_parameters_are_accepted(client: FlaskClient) -> None:
    parameters = {"max_new_tokens": 2, "top_k": 0, "repetition_penalty": 1.0, "best_of": 1, "watermark": False}
    assert client.post("/models/tiny-gpt2", json={"inputs": "Hi", "parameters": parameters}).status_code == 200


def test_an_embedding_model_extracts_features_or_classifies_zero_shot(client: FlaskClient) -> None:
    vectors = client.post("/models/tiny-embed", json={"inputs": ["a", "b c"]}).json
    tei = client.post("/models/tiny-embed/embed", json={"inputs": "a", "normalize": True}).json
    assert len(vectors) == 2 and tei[0] == pytest.approx(vectors[0], abs=1e-6)
    labels = client.post("/models/tiny-embed", json={"inputs": "a cat", "parameters": {
        "candidate_labels": ["x", "y"], "hypothesis_template": "about {}"}}).json
    assert sorted(item["label"] for item in labels) == ["x", "y"]
    refused = client.post("/models/tiny-embed", json={"inputs": "a", "normalize": False})
    assert refused.status_code == 400 and refused.json["error"]["param"] == "normalize"
    no_slot = client.post("/models/tiny-embed", json={"inputs": "a", "parameters": {
        "candidate_labels": ["x"], "hypothesis_template": "no slot"}})
    assert no_slot.status_code == 400
    many = client.post("/models/tiny-embed", json={"inputs": "a", "parameters": {
        "candidate_labels": [f"label {i}" for i in range(9)]}})  # max_inputs is 8 here: each label is embedded
    assert many.status_code == 400 and many.json["error"]["param"] == "parameters.candidate_labels"


def test_text_classification_lists_per_text(client: FlaskClient) -> None:
    answer = client.post("/models/tiny-sentiment", json={"inputs": ["good", "bad"], "parameters": {"top_k": 1}})
    assert answer.status_code == 200 and [len(scores) for scores in answer.json] == [1, 1]
    sigmoid = client.post("/models/tiny-sentiment", json={"inputs": "good",
                                                          "parameters": {"function_to_apply": "sigmoid"}})
    assert sigmoid.status_code == 400 and sigmoid.json["error"]["param"] == "parameters.function_to_apply"


def test_token_classification_one_text_or_several(client: FlaskClient) -> None:
    one = client.post("/models/tiny-ner", json={"inputs": "Angela Merkel visited Paris"})
    several = client.post("/models/tiny-ner", json={"inputs": ["Angela", "Paris"],
                                                    "parameters": {"aggregation_strategy": "none"}})
    assert one.status_code == several.status_code == 200
    assert isinstance(one.json, list) and all(isinstance(x, list) for x in several.json)
    assert all(e["entity_group"] is None for text in several.json for e in text)  # per token: `entity`
    assert client.post("/models/tiny-ner", json={"inputs": "a", "parameters": {"stride": 4}}).status_code == 400


def test_images_as_the_body_or_base64_json(client: FlaskClient) -> None:
    raw = client.post("/models/tiny-resnet", data=_png(), content_type="image/png")
    encoded = client.post("/models/tiny-resnet", json={"inputs": base64.b64encode(_png()).decode(),
                                                       "parameters": {"top_k": 2}})
    assert raw.status_code == encoded.status_code == 200
    assert len(raw.json) == 4 and len(encoded.json) == 2 and raw.json[:2] == encoded.json  # it has 4 labels
    boxes = client.post("/models/tiny-yolo", data=_png((64, 48)), content_type="application/octet-stream")
    assert boxes.status_code == 200
    assert all(0 <= b["box"]["xmin"] <= b["box"]["xmax"] <= 64 for b in boxes.json)


@pytest.mark.parametrize(("data", "content_type", "code"), [
    (b"not an image", "image/png", "invalid_image"),
    (b"", "image/png", "invalid_image"),
    (b"x=1", "application/x-www-form-urlencoded", "invalid_content_type"),
])
def test_bad_image_bodies_are_400(client: FlaskClient, data: bytes, content_type: str, code: str) -> None:
    answer = client.post("/models/tiny-resnet", data=data, content_type=content_type)
    assert answer.status_code == 400 and answer.json["error"]["code"] == code


def test_an_oversized_image_is_413(client: FlaskClient) -> None:
    answer = client.post("/models/tiny-resnet", data=_png((1200, 1000)), content_type="image/png")
    assert answer.status_code == 413


def test_routes_check_the_models_task(client: FlaskClient) -> None:
    assert client.post("/models/tiny-embed/generate", json={"inputs": "a"}).json["error"]["code"] == \
        "wrong_model_task"
    assert client.post("/models/tiny-gpt2/embed", json={"inputs": "a"}).status_code == 400
    assert client.post("/models/nope", json={"inputs": "a"}).status_code == 404
    assert client.post("/models/tiny-gpt2", data="hello", content_type="text/plain").status_code == 400


def test_chat_under_a_model_url_uses_that_model(client: FlaskClient) -> None:
    answer = client.post("/models/tiny-gpt2/v1/chat/completions",
                         json={"model": "dummy", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
    assert answer.status_code == 200 and answer.json["model"] == "tiny-gpt2"
