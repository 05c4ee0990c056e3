"""The default models, served by gunicorn, giving real answers over real HTTP (faces: test_faces.py)."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import requests
import skimage.data
from PIL import Image


def _jpeg(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "JPEG")
    return buf.getvalue()


def test_models_are_listed_with_task_and_device(server_url: str) -> None:
    data = {m["id"]: m for m in requests.get(f"{server_url}/v1/models", timeout=10).json()["data"]}
    assert {k: v["task"] for k, v in data.items()} == {
        "smollm2-135m-instruct": "text-generation", "all-minilm-l6-v2": "embeddings",
        "minilm-sentiment": "text-classification",
        "efficientnet-lite0": "image-classification", "en-core-web-sm": "token-classification", "pii": "pii",
        "yolov3-tiny": "object-detection", "mtcnn": "face-detection", "dlib-face-recognition": "face-embedding",
        "whisper-tiny.en": "speech-recognition", "pp-ocrv6": "ocr",
        "srl-dependency-rules": "semantic-role-labeling"}
    assert all(m["device"] == "cpu" and m["ready"] for m in data.values())


def test_chat_knows_the_capital_of_france(server_url: str) -> None:
    # Greedy, " Answer in one sentence." makes each token of "The capital of France is Paris." lead the next best
    # by 0.86 logits or more; the bare question puts "The" only 0.08 ahead of "L" (an answer without Paris).
    r = requests.post(f"{server_url}/v1/chat/completions", timeout=120, json={
        "model": "smollm2-135m-instruct", "temperature": 0, "max_tokens": 30,
        "messages": [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]})
    assert r.status_code == 200
    assert "Paris" in r.json()["choices"][0]["message"]["content"]


def test_paraphrases_are_closer_than_unrelated_sentences(server_url: str) -> None:
    texts = ["A man is playing a guitar.", "Someone plays an acoustic guitar.", "The stock market fell sharply today."]
    r = requests.post(f"{server_url}/v1/embeddings", json={"model": "all-minilm-l6-v2", "input": texts}, timeout=60)
    vectors = np.array([d["embedding"] for d in r.json()["data"]])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3


def test_zero_shot_text_classification(server_url: str) -> None:
    r = requests.post(f"{server_url}/v1/classify/text", timeout=60, json={
        "input": ["The team won the championship game last night.", "Bake the cake for thirty minutes."],
        "labels": ["sports", "cooking", "politics"]})
    top = [item["labels"][0]["label"] for item in r.json()["data"]]
    assert top == ["sports", "cooking"]
    assert r.json()["model"] == "all-minilm-l6-v2"  # labels given: zero-shot, not the sentiment head


# Plain sentences written for this test, none of them in the head's training tweets or probe sets.
PLAIN_SENTIMENT = [("I love it", "positive"), ("What a wonderful surprise, thank you so much!", "positive"),
                   ("The food was delicious and the staff were friendly.", "positive"),
                   ("I hate this.", "negative"), ("The service was terrible and the room was dirty.", "negative"),
                   ("It broke after two days, what a waste of money.", "negative")]


def test_sentiment_without_labels_is_the_trained_head(server_url: str) -> None:
    r = requests.post(f"{server_url}/v1/classify/text", timeout=60,
                      json={"input": [text for text, _ in PLAIN_SENTIMENT]})
    assert r.status_code == 200 and r.json()["model"] == "minilm-sentiment"
    answers = [item["labels"][0]["label"] for item in r.json()["data"]]
    assert answers == [label for _, label in PLAIN_SENTIMENT]
    assert r.json()["data"][0]["labels"][0]["score"] > 0.9  # "I love it": zero-shot said negative 0.513


def test_sentiment_explanation_weighs_the_sentiment_word_most(server_url: str) -> None:
    r = requests.post(f"{server_url}/v1/classify/text", timeout=120,
                      json={"model": "minilm-sentiment", "input": ["I love it", "I hate this."], "explain": True})
    for item, word in zip(r.json()["data"], ["love", "hate"]):
        tokens = item["explanation"]["tokens"]
        assert max(tokens, key=lambda t: t["weight"])["text"] == word, tokens


@pytest.mark.parametrize("text, expected", [
    ("Angela Merkel visited Paris in 2019.", [("Angela Merkel", "PERSON", 0, 13), ("Paris", "GPE", 22, 27),
                                              ("2019", "DATE", 31, 35)]),
    ("Apple is looking at buying U.K. startup for $1 billion.", [("Apple", "ORG", 0, 5), ("U.K.", "GPE", 27, 31),
                                                                 ("$1 billion", "MONEY", 44, 54)]),
    ("Barack Obama was born in Hawaii and worked for the University of Chicago.", [
        ("Barack Obama", "PERSON", 0, 12), ("Hawaii", "GPE", 25, 31), ("the University of Chicago", "ORG", 47, 72)]),
])
def test_named_entities_with_exact_offsets(server_url: str, text: str, expected: list) -> None:  # type: ignore[type-arg]
    r = requests.post(f"{server_url}/v1/entities", json={"input": text}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "en-core-web-sm"
    found = [(e["text"], e["label"], e["start"], e["end"]) for e in body["data"][0]["entities"]]
    assert found == expected
    assert all(text[start:end] == span for span, _, start, end in found)
    assert all(e["score"] is None for e in body["data"][0]["entities"])  # spaCy's NER gives no probabilities


def test_named_entities_per_token_and_in_a_batch(server_url: str) -> None:
    texts = ["Angela Merkel visited Paris in 2019.", "nothing to see here"]
    r = requests.post(f"{server_url}/v1/entities", json={"input": texts, "aggregation": "none"}, timeout=60)
    first, second = r.json()["data"]
    assert [(e["text"], e["label"], e["start"]) for e in first["entities"]] == [
        ("Angela", "B-PERSON", 0), ("Merkel", "I-PERSON", 7), ("Paris", "B-GPE", 22), ("2019", "B-DATE", 31)]
    assert second["entities"] == []
    assert r.json()["usage"]["prompt_tokens"] == 7 + 4  # spaCy tokens: the final "." is one


def test_named_entity_model_describes_its_character_limit(server_url: str) -> None:
    info = requests.get(f"{server_url}/v1/models/en-core-web-sm", timeout=10).json()
    assert (info["device"], info["endpoints"], info["max_characters"]) == ("cpu", ["/v1/entities"], 100_000)
    assert {"PERSON", "ORG", "GPE", "DATE", "MONEY"} <= set(info["labels"])
    r = requests.post(f"{server_url}/v1/entities", json={"input": "x" * 100_001}, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"


def _large_chelsea() -> np.ndarray:
    """The cat at 8x (3608x2400): the server decodes it at reduced scale and shrinks it before the model."""
    image = Image.fromarray(skimage.data.chelsea())
    return np.asarray(image.resize((image.width * 8, image.height * 8), Image.Resampling.BICUBIC))


@pytest.mark.parametrize("image, expected", [
    (skimage.data.chelsea, {"tabby, tabby cat", "tiger cat", "Egyptian cat"}),
    (skimage.data.coffee, {"espresso", "cup"}),
    (_large_chelsea, {"tabby, tabby cat", "tiger cat", "Egyptian cat"}),
])
def test_image_classification_of_real_photos(server_url: str, image, expected: set[str]) -> None:  # type: ignore[no-untyped-def]
    files = {"image": ("photo.jpg", _jpeg(image()), "image/jpeg")}
    r = requests.post(f"{server_url}/v1/classify/image", files=files, data={"top_k": "3"}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["data"][0]["labels"][0]["label"] in expected


def test_image_classification_json_base64(server_url: str) -> None:
    payload = {"image": base64.b64encode(_jpeg(skimage.data.chelsea())).decode(), "top_k": 1}
    r = requests.post(f"{server_url}/v1/classify/image", json=payload, timeout=60)
    assert "cat" in r.json()["data"][0]["labels"][0]["label"]


def test_stream_yields_several_chunks_then_done(server_url: str) -> None:
    with requests.post(f"{server_url}/v1/chat/completions", stream=True, timeout=120, json={
            "messages": [{"role": "user", "content": "Write one sentence about the sea."}], "max_tokens": 20,
            "stream": True}) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        events = [line[6:] for line in r.iter_lines(decode_unicode=True) if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert len([c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]) >= 3


@pytest.mark.parametrize("path, body, status", [
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 100000}, 400),
    ("/v1/completions", {"prompt": "hi", "temperature": -1}, 400),
    ("/v1/embeddings", {"model": "nope", "input": "x"}, 404),
    ("/v1/classify/image", {"image": "bm90IGFuIGltYWdl"}, 400),
    ("/v1/classify/text", {"model": "all-minilm-l6-v2", "input": "x"}, 400),  # zero-shot needs labels
    ("/v1/classify/text", {"model": "minilm-sentiment", "input": "x", "labels": ["joy"]}, 400),  # not its label
])
def test_bad_input_on_the_real_server_is_a_clear_4xx(server_url: str, path: str, body: dict, status: int) -> None:
    r = requests.post(f"{server_url}{path}", json=body, timeout=30)
    assert r.status_code == status and r.json()["error"]["message"]
    assert r.headers["X-Request-ID"]


def test_malformed_json_and_oversized_body(server_url: str) -> None:
    r = requests.post(f"{server_url}/v1/completions", data=b"{", headers={"Content-Type": "application/json"},
                      timeout=10)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    r = requests.post(f"{server_url}/v1/embeddings", data=b"x" * 21_000_000,
                      headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 413


def test_image_explanation_is_hottest_on_the_object(server_url: str) -> None:
    """The cat pasted in the top-right corner of a grey square: Grad-CAM's hottest cell lies on it."""
    canvas = Image.new("RGB", (600, 600), (128, 128, 128))
    canvas.paste(Image.fromarray(skimage.data.chelsea()).resize((300, 200)), (300, 0))
    buffer = io.BytesIO()
    canvas.save(buffer, "PNG")
    r = requests.post(f"{server_url}/v1/classify/image", timeout=120, json={
        "image": base64.b64encode(buffer.getvalue()).decode(), "explain": True, "top_k": 1})
    assert r.status_code == 200, r.text
    item = r.json()["data"][0]
    assert "cat" in item["labels"][0]["label"]
    grid = np.array(item["explanation"]["grid"])
    row, col = np.unravel_index(grid.argmax(), grid.shape)
    # The model sees the central 87.5% of a square image (resize, then centre crop): map the cell back.
    crop, margin = 0.875 * 600, 0.0625 * 600
    x, y = margin + (col + 0.5) / grid.shape[1] * crop, margin + (row + 0.5) / grid.shape[0] * crop
    assert 300 <= x <= 600 and 0 <= y <= 200, (row, col)


def test_pii_finds_and_redacts_personal_data_with_the_real_model(server_url: str) -> None:
    text = "Ada Lovelace (ada@example.com, +1 212-555-0199) paid with 4111 1111 1111 1111 from 192.168.1.20."
    r = requests.post(f"{server_url}/v1/pii", timeout=60, json={"input": text, "redact": "type"})
    assert r.status_code == 200, r.text
    (result,) = r.json()["data"]
    assert {e["type"] for e in result["entities"]} >= {"EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IP_ADDRESS"}
    assert "ada@example.com" not in result["redacted"] and "<CREDIT_CARD>" in result["redacted"]
