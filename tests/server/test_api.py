"""Every route over the wire (Flask test client), with tiny real models behind it."""

from __future__ import annotations

import base64
import io
import json

from flask.testing import FlaskClient
from PIL import Image


def _png(size: tuple[int, int] = (40, 30), fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, fmt)
    return buf.getvalue()


def _sse_events(body: bytes) -> list[str]:
    return [line[len("data: "):] for line in body.decode().split("\n") if line.startswith("data: ")]


# -- completions and chat

def test_completion_has_openai_shape_and_usage(client: FlaskClient) -> None:
    r = client.post("/v1/completions", json={"model": "tiny-gpt2", "prompt": "Once upon a time", "max_tokens": 5,
                                             "temperature": 0})
    assert r.status_code == 200
    body = r.json
    assert body["object"] == "text_completion" and body["id"].startswith("cmpl-")
    assert body["choices"][0]["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0 and usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert 1 <= usage["completion_tokens"] <= 5


def test_greedy_completion_is_deterministic(client: FlaskClient) -> None:
    req = {"prompt": "The capital of", "max_tokens": 8, "temperature": 0}
    texts = {client.post("/v1/completions", json=req).json["choices"][0]["text"] for _ in range(3)}
    assert len(texts) == 1


def test_seed_makes_sampling_reproducible(client: FlaskClient) -> None:
    req = {"prompt": "Hello", "max_tokens": 12, "temperature": 1.5, "seed": 1234}
    first = client.post("/v1/completions", json=req).json["choices"][0]["text"]
    assert client.post("/v1/completions", json=req).json["choices"][0]["text"] == first
    others = {client.post("/v1/completions", json={**req, "seed": s}).json["choices"][0]["text"] for s in range(5)}
    assert len(others) > 1  # different seeds give different samples


def test_n_and_several_prompts_index_choices(client: FlaskClient) -> None:
    r = client.post("/v1/completions", json={"prompt": ["a", "b"], "n": 2, "max_tokens": 3, "seed": 1})
    assert [c["index"] for c in r.json["choices"]] == [0, 1, 2, 3]


def test_completion_logprobs(client: FlaskClient) -> None:
    r = client.post("/v1/completions", json={"prompt": "Hello", "max_tokens": 4, "temperature": 0, "logprobs": 2})
    lp = r.json["choices"][0]["logprobs"]
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == len(lp["text_offset"])
    assert all(v <= 0 for v in lp["token_logprobs"])
    for _chosen, lp_value, top in zip(lp["tokens"], lp["token_logprobs"], lp["top_logprobs"]):
        assert len(top) <= 2 and lp_value >= max(top.values()) - 1e-5  # greedy picks the best


def test_stop_string_is_cut_from_output(client: FlaskClient) -> None:
    free = client.post("/v1/completions", json={"prompt": "Hello", "max_tokens": 12, "temperature": 0}).json
    text = free["choices"][0]["text"]
    assert len(text) > 3
    stop = text[2:4]
    cut = client.post("/v1/completions", json={"prompt": "Hello", "max_tokens": 12, "temperature": 0,
                                               "stop": [stop]}).json["choices"][0]
    assert cut["finish_reason"] == "stop" and cut["text"] == text[: text.index(stop)]


def test_chat_completion_shape(client: FlaskClient) -> None:
    r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4,
                                                  "logprobs": True, "top_logprobs": 2})
    assert r.status_code == 200, r.json
    choice = r.json["choices"][0]
    assert r.json["object"] == "chat.completion" and choice["message"]["role"] == "assistant"
    content = choice["logprobs"]["content"]
    assert content and all(len(t["top_logprobs"]) == 2 and t["logprob"] <= 0 for t in content)


def test_stream_yields_chunks_then_done_and_matches_non_stream(client: FlaskClient) -> None:
    req = {"prompt": "Once upon a time", "max_tokens": 10, "temperature": 0}
    full = client.post("/v1/completions", json=req).json["choices"][0]["text"]
    r = client.post("/v1/completions", json={**req, "stream": True, "stream_options": {"include_usage": True}})
    assert r.status_code == 200 and r.mimetype == "text/event-stream"
    events = _sse_events(r.data)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == full
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] >= 1
    assert any(c["choices"] and c["choices"][0]["finish_reason"] for c in chunks)


def test_chat_stream_starts_with_role_and_omits_unset_delta_fields(client: FlaskClient) -> None:
    r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5,
                                                  "stream": True})
    chunks = [json.loads(e) for e in _sse_events(r.data)[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert all("role" not in c["choices"][0]["delta"] for c in chunks[1:])
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")


def test_stream_error_before_first_token_is_a_plain_json_error(client: FlaskClient) -> None:
    r = client.post("/v1/completions", json={"prompt": "word " * 100, "max_tokens": 60, "stream": True})
    assert r.status_code == 400 and r.json["error"]["code"] == "context_length_exceeded"


# -- embeddings and classification

def test_embeddings_float_and_base64_agree(client: FlaskClient) -> None:
    import numpy as np

    floats = client.post("/v1/embeddings", json={"input": ["a cat", "a dog"]}).json
    assert floats["object"] == "list" and [d["index"] for d in floats["data"]] == [0, 1]
    vector = np.array(floats["data"][0]["embedding"])
    assert abs(np.linalg.norm(vector) - 1) < 1e-4
    b64 = client.post("/v1/embeddings", json={"input": "a cat", "encoding_format": "base64"}).json
    decoded = np.frombuffer(base64.b64decode(b64["data"][0]["embedding"]), dtype="<f4")
    assert np.allclose(decoded, vector, atol=1e-5)
    assert floats["usage"]["prompt_tokens"] > 0


def test_embedding_of_a_text_does_not_depend_on_its_batch(client: FlaskClient) -> None:
    alone = client.post("/v1/embeddings", json={"input": "hello world"}).json["data"][0]["embedding"]
    batched = client.post("/v1/embeddings", json={"input": ["a much longer sentence about cats", "hello world"]})
    assert max(abs(a - b) for a, b in zip(alone, batched.json["data"][1]["embedding"])) < 1e-4


def test_zero_shot_classification_scores_sum_to_one_sorted(client: FlaskClient) -> None:
    r = client.post("/v1/classify/text", json={"model": "tiny-embed", "input": ["I love it", "meh"],
                                               "labels": ["positive", "negative", "neutral"], "top_k": 3})
    assert r.status_code == 200
    for item in r.json["data"]:
        scores = [label["score"] for label in item["labels"]]
        assert scores == sorted(scores, reverse=True) and abs(sum(scores) - 1) < 1e-4
        assert {label["label"] for label in item["labels"]} == {"positive", "negative", "neutral"}


def test_own_label_classifier_returns_its_labels(client: FlaskClient) -> None:
    r = client.post("/v1/classify/text", json={"model": "tiny-sentiment", "input": "great"})
    labels = r.json["data"][0]["labels"]
    assert {label["label"] for label in labels} == {"negative", "neutral", "positive"}
    assert abs(sum(label["score"] for label in labels) - 1) < 1e-4


def test_image_classification_json_and_multipart(client: FlaskClient) -> None:
    png = _png()
    as_json = client.post("/v1/classify/image", json={"model": "tiny-resnet", "image": base64.b64encode(png).decode(),
                                                      "top_k": 2})
    assert as_json.status_code == 200 and len(as_json.json["data"][0]["labels"]) == 2
    form = {"model": "tiny-resnet", "top_k": "4", "a": (io.BytesIO(png), "a.png"),
            "b": (io.BytesIO(_png(fmt="JPEG")), "b.jpg")}
    multi = client.post("/v1/classify/image", data=form, content_type="multipart/form-data")
    assert multi.status_code == 200, multi.json
    assert [d["index"] for d in multi.json["data"]] == [0, 1]
    assert abs(sum(label["score"] for label in multi.json["data"][0]["labels"]) - 1) < 1e-4
    assert as_json.json["data"][0]["labels"][0] == multi.json["data"][0]["labels"][0]


def test_timm_model_loaded_from_renamed_weights(client: FlaskClient) -> None:
    data_url = "data:image/png;base64," + base64.b64encode(_png()).decode()
    r = client.post("/v1/classify/image", json={"model": "tiny-timm", "image": data_url})
    assert r.status_code == 200 and len(r.json["data"][0]["labels"]) == 5
    assert r.json["data"][0]["labels"][0]["label"]  # ImageNet names, not indices


# -- models, health, openapi, request ids

def test_models_list_tells_task_endpoints_and_device(client: FlaskClient) -> None:
    data = {m["id"]: m for m in client.get("/v1/models").json["data"]}
    assert data["tiny-gpt2"]["task"] == "text-generation" and data["tiny-gpt2"]["device"] == "cpu"
    assert "/v1/classify/text" in data["tiny-embed"]["endpoints"]
    assert client.get("/v1/models/tiny-resnet").json["id"] == "tiny-resnet"


def test_models_show_what_each_model_describes(client: FlaskClient) -> None:
    data = {m["id"]: m for m in client.get("/v1/models").json["data"]}
    embed = client.application.extensions["maas"].registry.get("tiny-embed").runner.model
    assert data["tiny-embed"]["dimensions"] == embed.dimensions and data["tiny-gpt2"]["dimensions"] is None
    assert data["tiny-gpt2"]["context_length"] > 0 and data["tiny-sentiment"]["labels"] is None  # not in the list
    one = client.get("/v1/models/tiny-sentiment").json
    assert one["labels"] == client.application.extensions["maas"].registry.get("tiny-sentiment").runner.model.labels


def test_health_ready_and_openapi(client: FlaskClient) -> None:
    assert client.get("/health").status_code == 200
    assert client.get("/ready").status_code == 200
    spec = client.get("/openapi.json").json
    assert {"/v1/completions", "/v1/chat/completions", "/v1/embeddings", "/v1/models", "/v1/classify/text",
            "/v1/classify/image"} <= set(spec["paths"])
    for name in ("CompletionRequest", "ChatCompletion", "EmbeddingRequest", "ClassificationList", "ErrorResponse"):
        assert name in spec["components"]["schemas"]


def test_request_id_is_echoed_or_made(client: FlaskClient) -> None:
    assert client.get("/health", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    assert len(client.get("/health").headers["X-Request-ID"]) >= 16
    assert client.post("/v1/embeddings", data="{").headers["X-Request-ID"]
