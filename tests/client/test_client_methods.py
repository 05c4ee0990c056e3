"""Each Client method: the request it sends and the typed result it returns."""

from __future__ import annotations

import base64
import io
import json
import threading
from pathlib import Path
from typing import Any

import pytest
import responses
from responses import matchers

import maas_client as maas
from tests.client.client_support import BASE, ENTITIES, MAAS_MODELS, completion_chunk, sse

COMPLETION = {
    "id": "cmpl-1", "object": "text_completion", "created": 1764360000,
    "model": "smollm2-135m-instruct",
    "choices": [
        {"index": 0, "text": " there was", "finish_reason": "length",
         "logprobs": {"tokens": [" there", " was"], "token_logprobs": [-0.5, -0.1],
                      "top_logprobs": [{" there": -0.5}, {" was": -0.1}], "text_offset": [16, 22]}},
        {"index": 1, "text": " a king", "finish_reason": "length", "logprobs": None},
    ],
    "usage": {"prompt_tokens": 4, "completion_tokens": 4, "total_tokens": 8},
}
CHAT = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1764360000,
    "model": "smollm2-135m-instruct",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"},
                 "logprobs": {"content": [{"token": "Hello", "logprob": -0.2, "bytes": [72],
                                           "top_logprobs": [{"token": "Hello", "logprob": -0.2,
                                                             "bytes": [72]}]}]},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
}
CLASSIFICATION = {
    "object": "list", "model": "all-minilm-l6-v2",
    "data": [{"index": 0, "labels": [{"label": "positive", "score": 0.9},
                                     {"label": "negative", "score": 0.1}]}],
    "usage": {"prompt_tokens": 4, "total_tokens": 4},
}
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 16
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def sent_json(mocked: responses.RequestsMock, index: int = -1) -> Any:
    body = mocked.calls[index].request.body
    return json.loads(body)


def test_generate_sends_the_sampling_options_and_returns_a_completion(
    server: responses.RequestsMock, client: maas.Client
) -> None:
    server.post(f"{BASE}/v1/completions", json=COMPLETION)
    out = client.generate(
        "Once upon a time", max_tokens=5, temperature=0, top_p=0.9, n=2, stop=["\n"], seed=7,
        logprobs=1,
    )
    assert isinstance(out, maas.Completion)
    assert out.text == " there was"
    assert [choice.text for choice in out.choices] == [" there was", " a king"]
    assert out.choices[0].logprobs is not None
    assert out.choices[0].logprobs.tokens == [" there", " was"]
    assert out.usage is not None and out.usage.total_tokens == 8
    assert sent_json(server) == {
        "model": "smollm2-135m-instruct", "prompt": "Once upon a time", "max_tokens": 5,
        "temperature": 0, "top_p": 0.9, "n": 2, "stop": ["\n"], "seed": 7, "logprobs": 1,
    }


def test_generate_leaves_unset_options_to_the_server(
    mocked: responses.RequestsMock, client: maas.Client
) -> None:
    mocked.post(f"{BASE}/v1/completions", json=COMPLETION)
    client.generate(("a", "b"), model="m")
    assert sent_json(mocked) == {"model": "m", "prompt": ["a", "b"]}
    assert len(mocked.calls) == 1  # model given: no lookup


def test_generate_stream_yields_typed_chunks_with_new_text(
    mocked: responses.RequestsMock, client: maas.Client
) -> None:
    body = sse(completion_chunk(" there"), completion_chunk(" was", "length"))
    mocked.post(f"{BASE}/v1/completions", body=body, content_type="text/event-stream")
    with client.generate("Once upon a time", model="m", stream=True) as stream:
        chunks = list(stream)
    assert all(isinstance(chunk, maas.CompletionChunk) for chunk in chunks)
    assert [chunk.text for chunk in chunks] == [" there", " was"]
    assert chunks[-1].choices[0].finish_reason == "length"
    assert sent_json(mocked)["stream"] is True
    assert mocked.calls[0].request.headers["Accept"] == "text/event-stream"


def test_chat_sends_messages_and_returns_a_chat_completion(
    server: responses.RequestsMock, client: maas.Client
) -> None:
    server.post(f"{BASE}/v1/chat/completions", json=CHAT)
    reply = client.chat(
        [{"role": "system", "content": "Be brief."}, maas.ChatMessage(role="user", content="Hi")],
        max_tokens=8, logprobs=True, top_logprobs=1,
    )
    assert isinstance(reply, maas.ChatCompletion)
    assert reply.text == "Hello!"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].logprobs is not None
    assert reply.choices[0].logprobs.content is not None
    assert reply.choices[0].logprobs.content[0].top_logprobs[0].token == "Hello"
    assert reply.usage is not None and reply.usage.completion_tokens == 2
    assert sent_json(server) == {
        "model": "smollm2-135m-instruct",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "max_tokens": 8, "logprobs": True, "top_logprobs": 1,
    }


def test_chat_accepts_a_plain_string_as_one_user_message(
    mocked: responses.RequestsMock, client: maas.Client
) -> None:
    mocked.post(f"{BASE}/v1/chat/completions", json=CHAT)
    client.chat("Hi", model="m")
    assert sent_json(mocked)["messages"] == [{"role": "user", "content": "Hi"}]


def test_chat_text_joins_content_parts() -> None:
    reply = maas.ChatCompletion.model_validate(
        {"choices": [{"message": {"role": "assistant",
                                  "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}}]}
    )
    assert reply.text == "ab"


def test_chat_stream_yields_deltas(mocked: responses.RequestsMock, client: maas.Client) -> None:
    def chunk(delta: dict[str, str], finish: str | None = None) -> dict[str, Any]:
        return {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    body = sse(chunk({"role": "assistant"}), chunk({"content": "Hel"}), chunk({"content": "lo"}),
               chunk({}, "stop"))
    mocked.post(f"{BASE}/v1/chat/completions", body=body, content_type="text/event-stream")
    with client.chat("Hi", model="m", stream=True) as stream:
        texts = [chunk.text for chunk in stream]
    assert texts == ["", "Hel", "lo", ""]


def test_embed_requests_floats_and_returns_vectors_in_input_order(
    server: responses.RequestsMock, client: maas.Client
) -> None:
    server.post(f"{BASE}/v1/embeddings", json={
        "object": "list", "model": "all-minilm-l6-v2",
        "data": [{"object": "embedding", "index": 1, "embedding": [0.0, 1.0]},
                 {"object": "embedding", "index": 0, "embedding": [1.0, 0.0]}],
        "usage": {"prompt_tokens": 2, "total_tokens": 2},
    })
    vecs = client.embed(["a", "b"])
    assert vecs.vectors == [[1.0, 0.0], [0.0, 1.0]]
    assert sent_json(server) == {"model": "all-minilm-l6-v2", "input": ["a", "b"], "encoding_format": "float"}


def test_classify_text_sends_labels_and_top_k(
    server: responses.RequestsMock, client: maas.Client
) -> None:
    server.post(f"{BASE}/v1/classify/text", json=CLASSIFICATION)
    result = client.classify_text("I love it", labels=["positive", "negative"], top_k=2)
    assert result.label == "positive"
    assert [(s.label, s.score) for s in result.labels] == [("positive", 0.9), ("negative", 0.1)]
    assert len(result.data) == 1
    # No model named: the server picks one that fits (a zero-shot model, as labels are given).
    assert sent_json(server) == {"input": "I love it", "labels": ["positive", "negative"], "top_k": 2}


def test_classify_text_with_explain_reads_token_weights(server: responses.RequestsMock, client: maas.Client) -> None:
    tokens = [{"text": "love", "start": 2, "end": 6, "weight": 1.0}, {"text": "it", "start": 7, "end": 9,
                                                                      "weight": -0.25}]
    item = {**CLASSIFICATION["data"][0], "explanation": {"label": "positive", "tokens": tokens}}
    server.post(f"{BASE}/v1/classify/text", json={**CLASSIFICATION, "data": [item]})
    result = client.classify_text("I love it", explain=True, model="sentiment")
    assert sent_json(server) == {"model": "sentiment", "input": "I love it", "explain": True}
    explanation = result.data[0].explanation
    assert explanation is not None and [t.text for t in explanation.tokens or []] == ["love", "it"]
    page = result._repr_html_()
    assert "rgba(44,160,44,1.00)" in page and "rgba(214,39,40,0.25)" in page  # for and against, shaded


def test_extract_entities_sends_the_texts_and_returns_typed_entities(
    server: responses.RequestsMock, client: maas.Client
) -> None:
    server.post(f"{BASE}/v1/entities", json=ENTITIES)
    result = client.extract_entities("Angela Merkel visited Paris in 2019.")
    assert sent_json(server) == {"model": "en-core-web-sm", "input": "Angela Merkel visited Paris in 2019.",
                                 "aggregation": "simple"}
    assert [(e.text, e.label, e.start, e.end, e.score) for e in result.entities] == [
        ("Angela Merkel", "PERSON", 0, 13, None), ("Paris", "GPE", 22, 27, None), ("2019", "DATE", 31, 35, None)]
    assert isinstance(result.entities[0], maas.Entity) and result.usage is not None and result.usage.total_tokens == 7


def test_extract_entities_per_token_for_several_texts(mocked: responses.RequestsMock, client: maas.Client) -> None:
    mocked.post(f"{BASE}/v1/entities", json={"model": "ner", "data": [
        {"index": 0, "entities": [{"text": "Ada", "label": "B-PER", "start": 0, "end": 3, "score": 0.97}]},
        {"index": 1, "entities": []}]})
    result = client.extract_entities(("Ada wrote.", "Nothing."), model="ner", aggregation="none")
    assert sent_json(mocked) == {"model": "ner", "input": ["Ada wrote.", "Nothing."], "aggregation": "none"}
    assert [item.entities for item in result.data][1] == []
    assert result.entities[0].score == 0.97


def test_classify_image_uploads_every_kind_of_image_as_file_parts(
    server: responses.RequestsMock, client: maas.Client, tmp_path: Path
) -> None:
    server.post(f"{BASE}/v1/classify/image", json={**CLASSIFICATION, "model": "efficientnet-lite0"})
    path = tmp_path / "cat.jpg"
    path.write_bytes(JPEG)
    result = client.classify_image([str(path), path, PNG, io.BytesIO(JPEG)], top_k=3)
    assert result.label == "positive"
    request = server.calls[-1].request
    assert request.headers["Content-Type"].startswith("multipart/form-data")
    body = request.body
    assert isinstance(body, bytes)
    assert body.count(b'name="image"') == 4
    assert body.count(b'filename="cat.jpg"') == 2
    assert body.count(b"Content-Type: image/jpeg") == 3
    assert body.count(b"Content-Type: image/png") == 1
    assert b'name="top_k"\r\n\r\n3' in body
    assert b'name="model"\r\n\r\nefficientnet-lite0' in body


def test_classify_image_with_explain_sends_form_booleans_and_reads_the_overlay(
    server: responses.RequestsMock, client: maas.Client
) -> None:
    png = base64.b64encode(PNG).decode()
    item = {**CLASSIFICATION["data"][0], "explanation": {"label": "positive", "grid": [[0.0, 1.0]],
                                                          "overlay_png": png}}
    server.post(f"{BASE}/v1/classify/image", json={**CLASSIFICATION, "data": [item]})
    result = client.classify_image(PNG, model="m", explain=True, overlay=True)
    body = server.calls[-1].request.body
    assert isinstance(body, bytes)
    assert b'name="explain"\r\n\r\ntrue' in body and b'name="explain_overlay"\r\n\r\ntrue' in body
    explanation = result.data[0].explanation
    assert explanation is not None and explanation.overlay == PNG and explanation.grid == [[0.0, 1.0]]
    assert f"data:image/png;base64,{png}" in result._repr_html_()


def test_classify_image_accepts_a_pil_image(
    mocked: responses.RequestsMock, client: maas.Client
) -> None:
    image_module = pytest.importorskip("PIL.Image")
    mocked.post(f"{BASE}/v1/classify/image", json=CLASSIFICATION)
    client.classify_image(image_module.new("RGB", (4, 4), "red"), model="m")
    body = mocked.calls[-1].request.body
    assert isinstance(body, bytes)
    assert b'filename="image0.png"' in body and b"\x89PNG" in body


def test_classify_image_rejects_what_is_not_an_image(client: maas.Client) -> None:
    with pytest.raises(TypeError, match="path, bytes"):
        client.classify_image(42, model="m")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="binary mode"):
        client.classify_image(io.StringIO("text"), model="m")  # type: ignore[arg-type]


def test_models_lists_typed_model_infos(server: responses.RequestsMock, client: maas.Client) -> None:
    models = client.models()
    assert [m.id for m in models] == ["smollm2-135m-instruct", "all-minilm-l6-v2", "efficientnet-lite0",
                                      "en-core-web-sm"]
    assert models[0].task == "text-generation"
    assert models[0].endpoints == ["/v1/completions", "/v1/chat/completions"]
    assert models[0].ready is True


def test_model_fetches_one_model_and_unknown_is_not_found(server: responses.RequestsMock, client: maas.Client) -> None:
    server.get(f"{BASE}/v1/models/all-minilm-l6-v2", json=MAAS_MODELS["data"][1])
    server.get(f"{BASE}/v1/models/nope", status=404, json={"error": {"type": "not_found_error", "message": "no",
                                                                      "param": "model", "code": "model_not_found"}})
    assert client.model("all-minilm-l6-v2").task == "embeddings"
    with pytest.raises(maas.NotFoundError) as info:
        client.model("nope")
    assert info.value.code == "model_not_found"


def test_default_model_is_the_first_that_serves_the_route(
    server: responses.RequestsMock, client: maas.Client
) -> None:
    server.post(f"{BASE}/v1/completions", json=COMPLETION)
    server.post(f"{BASE}/v1/classify/image", json=CLASSIFICATION)
    client.generate("a")
    client.classify_image(PNG)
    assert sent_json(server, 1)["model"] == "smollm2-135m-instruct"
    assert b"efficientnet-lite0" in server.calls[-1].request.body


def test_model_list_is_fetched_once_per_client_even_from_many_threads(
    server: responses.RequestsMock, client: maas.Client
) -> None:
    server.post(f"{BASE}/v1/embeddings", json={"data": [{"embedding": [1.0]}]})
    threads = [threading.Thread(target=client.embed, args=("x",)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client.with_options(max_retries=0).embed("y")
    lookups = [call for call in server.calls if call.request.url == f"{BASE}/v1/models"]
    assert len(lookups) == 1
    assert len(server.calls) == 10


def test_default_model_on_a_server_without_endpoints_asks_for_model(
    mocked: responses.RequestsMock, client: maas.Client
) -> None:
    mocked.get(f"{BASE}/v1/models", json={"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model"}]})
    with pytest.raises(maas.MaasError, match=r"pass model= explicitly, e.g. model='gpt-4o-mini'"):
        client.chat("Hi")


def test_default_model_when_no_model_serves_the_route(
    mocked: responses.RequestsMock, client: maas.Client
) -> None:
    only_text = {"object": "list", "data": [MAAS_MODELS["data"][0]]}
    mocked.get(f"{BASE}/v1/models", json=only_text)
    with pytest.raises(maas.MaasError, match=r"No model .* serves /v1/embeddings"):
        client.embed("x")


def test_a_failed_model_lookup_is_not_cached(
    mocked: responses.RequestsMock, client: maas.Client
) -> None:
    mocked.get(f"{BASE}/v1/models", status=404, json={"error": {"message": "nope"}})
    with pytest.raises(maas.NotFoundError):
        client.embed("x")
    mocked.replace(responses.GET, f"{BASE}/v1/models", json=MAAS_MODELS)
    mocked.post(f"{BASE}/v1/embeddings", json={"data": [{"embedding": [1.0]}]},
                match=[matchers.json_params_matcher({"model": "all-minilm-l6-v2", "input": "x",
                                                     "encoding_format": "float"})])
    assert client.embed("x").vectors == [[1.0]]


def test_unknown_response_fields_are_kept(mocked: responses.RequestsMock, client: maas.Client) -> None:
    mocked.post(f"{BASE}/v1/completions", json={**COMPLETION, "system_fingerprint": "fp_1"})
    out = client.generate("a", model="m")
    assert out.system_fingerprint == "fp_1"  # type: ignore[attr-defined]


DETECTIONS = {
    "object": "list", "model": "yolov3-tiny", "usage": {"prompt_tokens": 2, "total_tokens": 2},
    "data": [{"index": 0, "width": 640, "height": 480, "objects": [
                 {"label": "cat", "score": 0.9, "box": {"x1": 10, "y1": 20, "x2": 110, "y2": 220}},
                 {"label": "cup", "score": 0.5, "box": {"x1": 300, "y1": 40, "x2": 340, "y2": 90}}]},
             {"index": 1, "width": 32, "height": 32, "objects": []}],
}
DETECTOR = {"id": "yolov3-tiny", "object": "model", "task": "object-detection", "endpoints": ["/v1/detect/objects"]}


def test_detect_objects_uploads_images_with_thresholds_and_reads_boxes(
    mocked: responses.RequestsMock, client: maas.Client, tmp_path: Path
) -> None:
    mocked.get(f"{BASE}/v1/models", json={"object": "list", "data": [*MAAS_MODELS["data"], DETECTOR]})
    mocked.post(f"{BASE}/v1/detect/objects", json=DETECTIONS)
    path = tmp_path / "street.jpg"
    path.write_bytes(JPEG)
    result = client.detect_objects([path, PNG], score_threshold=0.4, max_detections=5)
    body = mocked.calls[-1].request.body
    assert isinstance(body, bytes)
    assert body.count(b'name="image"') == 2 and b'filename="street.jpg"' in body
    assert b'name="model"\r\n\r\nyolov3-tiny' in body  # the server's model for the route
    assert b'name="score_threshold"\r\n\r\n0.4' in body and b'name="max_detections"\r\n\r\n5' in body
    assert b'name="iou_threshold"' not in body  # unset: the server's default
    assert isinstance(result, maas.ObjectDetections) and result.model == "yolov3-tiny"
    assert [o.label for o in result.objects] == ["cat", "cup"]
    cat = result.objects[0]
    assert isinstance(cat, maas.DetectedObject) and isinstance(cat.box, maas.Box)
    assert (cat.box.x1, cat.box.width, cat.box.height) == (10, 100, 200)
    assert result.data[1].objects == [] and (result.data[1].width, result.data[1].height) == (32, 32)
    # The uploaded images stay with the result, for the notebook view.
    page = result._repr_html_()
    assert f"data:image/jpeg;base64,{base64.b64encode(JPEG).decode()}" in page
    assert f"data:image/png;base64,{base64.b64encode(PNG).decode()}" in page


def test_detect_objects_takes_a_pil_image_and_a_file(mocked: responses.RequestsMock, client: maas.Client) -> None:
    image_module = pytest.importorskip("PIL.Image")
    mocked.post(f"{BASE}/v1/detect/objects", json=DETECTIONS)
    result = client.detect_objects([image_module.new("RGB", (4, 4), "red"), io.BytesIO(JPEG)], model="m",
                                   iou_threshold=0.3)
    body = mocked.calls[-1].request.body
    assert isinstance(body, bytes)
    assert b'filename="image0.png"' in body and b'name="iou_threshold"\r\n\r\n0.3' in body
    assert b"data:image/png;base64," in result._repr_html_().encode()
    with pytest.raises(TypeError, match="path, bytes"):
        client.detect_objects(42, model="m")  # type: ignore[arg-type]


def test_read_text_keeps_the_upload_for_a_notebook_view_with_each_polygon(
    server: responses.RequestsMock, client: maas.Client
) -> None:
    answer = {"object": "list", "model": "pp-ocrv6", "data": [{"index": 0, "width": 300, "height": 100,
              "text": "Invoice 17\nTotal $5", "lines": [
                  {"text": "Invoice 17", "score": 0.99, "box": [[10, 10], [200, 10], [200, 40], [10, 40]]},
                  {"text": "Total $5", "score": 0.97, "box": [[10, 60], [150, 60], [150, 90], [10, 90]]}]}]}
    server.post(f"{BASE}/v1/ocr", json=answer)
    result = client.read_text(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16, model="m", score_threshold=0.6)
    assert result.text == "Invoice 17\nTotal $5" and [line.score for line in result.lines] == [0.99, 0.97]
    page = result._repr_html_()
    assert page.count("<polygon") == 2 and "data:image/png;base64," in page
    assert 'points="10.0,10.0 200.0,10.0 200.0,40.0 10.0,40.0"' in page and "Total $5" in page
