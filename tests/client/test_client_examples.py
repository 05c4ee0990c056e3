"""The examples run against a (mocked) maas server, and the notebook is clean nbformat 4."""

from __future__ import annotations

import io
import json
import runpy
import sys
from pathlib import Path
from typing import Any

import pytest
import responses

from tests.client.client_support import BASE, ENTITIES, MAAS_MODELS, completion_chunk, sse

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CLASSIFICATION = {"object": "list", "model": "efficientnet-lite0", "data": [
    {"index": 0, "labels": [{"label": "tabby cat", "score": 0.8}, {"label": "tiger cat", "score": 0.2}]}]}


def chat_chunk(content: str) -> dict[str, Any]:
    return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": content}}]}


@pytest.fixture
def run_example(
    server: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Any:
    monkeypatch.setenv("MAAS_BASE_URL", BASE)

    def run(name: str, *args: str) -> str:
        monkeypatch.setattr(sys, "argv", [name, *args])
        runpy.run_path(str(EXAMPLES / name), run_name="__main__")
        return capsys.readouterr().out

    return run


def test_generate_example(server: responses.RequestsMock, run_example: Any) -> None:
    server.post(f"{BASE}/v1/completions", json={"model": "smollm2-135m-instruct", "choices": [
        {"text": " there was a fox.", "finish_reason": "stop"}], "usage": {"completion_tokens": 5}})
    out = run_example("generate.py", "Once upon a time")
    assert "Once upon a time there was a fox." in out and "5 tokens" in out


def test_stream_example(server: responses.RequestsMock, run_example: Any) -> None:
    server.post(f"{BASE}/v1/completions", body=sse(completion_chunk(" there"), completion_chunk(" was")),
                content_type="text/event-stream")
    assert run_example("stream.py", "Once") == "Once there was\n"


def test_chat_example_keeps_the_conversation(
    server: responses.RequestsMock, run_example: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for reply in ("Hello!", "Fine."):
        server.post(f"{BASE}/v1/chat/completions", body=sse(chat_chunk(reply)), content_type="text/event-stream")
    monkeypatch.setattr(sys, "stdin", io.StringIO("Hi\nHow are you?\n\n"))
    out = run_example("chat.py")
    assert "Hello!" in out and "Fine." in out
    last = json.loads(server.calls[-1].request.body)["messages"]
    assert [m["role"] for m in last] == ["system", "user", "assistant", "user"]
    assert last[2]["content"] == "Hello!"


def test_embed_nearest_neighbour_example(server: responses.RequestsMock, run_example: Any) -> None:
    # query, then five sentences: the second sentence points the same way as the query.
    vectors = [[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.0, 1.0], [0.5, 0.5], [0.1, 0.9]]
    server.post(f"{BASE}/v1/embeddings", json={"data": [{"index": i, "embedding": v} for i, v in enumerate(vectors)]})
    out = run_example("embed_nearest_neighbour.py", "bread?")
    assert "nearest: Knead the dough" in out


def test_classify_image_example_with_a_path(
    server: responses.RequestsMock, run_example: Any, tmp_path: Path
) -> None:
    server.post(f"{BASE}/v1/classify/image", json=CLASSIFICATION)
    image = tmp_path / "cat.jpg"
    image.write_bytes(b"\xff\xd8\xff\xe0fake")
    out = run_example("classify_image.py", str(image))
    assert "cat.jpg" in out and "tabby cat" in out


def test_classify_image_example_default_image(server: responses.RequestsMock, run_example: Any) -> None:
    server.post(f"{BASE}/v1/classify/image", json=CLASSIFICATION)
    out = run_example("classify_image.py")
    assert "cat.jpg" in out
    assert b"\xff\xd8\xff" in server.calls[-1].request.body  # a real JPEG was uploaded


def test_notebook_is_nbformat_4_without_outputs_and_its_code_compiles() -> None:
    notebook = json.loads((EXAMPLES / "quickstart.ipynb").read_text())
    assert notebook["nbformat"] == 4
    assert notebook["cells"]
    ids = [cell["id"] for cell in notebook["cells"]]
    assert len(set(ids)) == len(ids)  # Jupyter rewrites repeated ids, and nbconvert warns on every run
    for cell in notebook["cells"]:
        assert cell["cell_type"] in ("markdown", "code")
        assert {"id", "metadata", "source"} <= set(cell)
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
            compile("".join(cell["source"]), cell["id"], "exec")


def test_faces_example_finds_and_compares(
    server: responses.RequestsMock, run_example: Any, tmp_path: Path
) -> None:
    models = [{"id": name, "task": task, "endpoints": [route]} for name, task, route in (
        ("mtcnn", "face-detection", "/v1/detect/faces"),
        ("dlib-face-recognition", "face-embedding", "/v1/faces/embeddings"))]
    server.replace(responses.GET, f"{BASE}/v1/models", json={"object": "list", "data": models})
    face = {"score": 0.999, "box": {"x1": 10, "y1": 20, "x2": 50, "y2": 70}}
    server.post(f"{BASE}/v1/detect/faces", json={"model": "mtcnn", "data": [{"index": 0, "faces": [face]}]})
    vectors = [{"index": 0, "faces": [{**face, "embedding": [0.0, 0.0]}]},
               {"index": 1, "faces": [{**face, "embedding": [0.3, 0.4]}]}]
    server.post(f"{BASE}/v1/faces/embeddings", json={"model": "dlib-face-recognition", "data": vectors})
    photos = [tmp_path / "me.jpg", tmp_path / "passport.jpg"]
    for photo in photos:
        photo.write_bytes(b"\xff\xd8\xff\xe0fake")
    out = run_example("faces.py", *map(str, photos))
    assert "me.jpg (mtcnn): 1 face(s)" in out and "0.999 at (10, 20), 40 x 50 pixels" in out
    assert "me.jpg vs passport.jpg: distance 0.50 -> the same person (threshold 0.6)" in out


def test_sentiment_example_prints_the_label_and_why(server: responses.RequestsMock, run_example: Any) -> None:
    tokens = [{"text": "love", "start": 2, "end": 6, "weight": 1.0}, {"text": "it", "start": 7, "end": 9,
                                                                     "weight": -0.05}]
    server.post(f"{BASE}/v1/classify/text", json={"object": "list", "model": "minilm-sentiment", "data": [
        {"index": 0, "labels": [{"label": "positive", "score": 0.981}, {"label": "negative", "score": 0.018}],
         "explanation": {"label": "positive", "tokens": tokens}}]})
    out = run_example("sentiment.py", "--why", "I love it")
    assert out == "positive 0.98  I love it\n         why: love(+1.00) it(-0.05)\n(minilm-sentiment)\n"
    assert json.loads(server.calls[-1].request.body) == {"input": ["I love it"], "explain": True}


def test_entities_example_marks_each_entity(server: responses.RequestsMock, run_example: Any) -> None:
    server.post(f"{BASE}/v1/entities", json=ENTITIES)
    out = run_example("entities.py", "Angela Merkel visited Paris in 2019.")
    assert out == "[Angela Merkel](PERSON) visited [Paris](GPE) in [2019](DATE).\n(en-core-web-sm, 7 tokens)\n"
    assert json.loads(server.calls[-1].request.body)["aggregation"] == "simple"
DETECTIONS = {"object": "list", "model": "yolov3-tiny", "data": [{"index": 0, "width": 900, "height": 600, "objects": [
    {"label": "motorbike", "score": 0.93, "box": {"x1": 53, "y1": 318, "x2": 416, "y2": 583}}]}]}


def test_detect_objects_example_draws_the_boxes(
    server: responses.RequestsMock, run_example: Any, tmp_path: Path
) -> None:
    image_module = pytest.importorskip("PIL.Image")
    pytest.importorskip("skimage")
    detector = {"id": "yolov3-tiny", "task": "object-detection", "endpoints": ["/v1/detect/objects"]}
    server.replace(responses.GET, f"{BASE}/v1/models", json={"data": [*MAAS_MODELS["data"], detector]})
    server.post(f"{BASE}/v1/detect/objects", json=DETECTIONS)
    out = run_example("detect_objects.py", "--draw", str(tmp_path / "boxes.png"))
    assert "collage.png (yolov3-tiny): 1 object(s)" in out and "motorbike" in out and "(53, 318)-(416, 583)" in out
    assert b"\x89PNG" in server.calls[-1].request.body  # the collage was uploaded
    with image_module.open(tmp_path / "boxes.png") as drawn:
        assert drawn.size == (900, 600) and drawn.getpixel((53, 400)) == (255, 0, 0)  # the box's left edge


TRANSCRIPTION = {"task": "transcribe", "language": "en", "duration": 2.91, "text": "The quick brown fox.",
                 "segments": [{"id": 0, "start": 0.0, "end": 2.64, "text": " The quick brown fox."}],
                 "usage": {"type": "duration", "seconds": 2.91}}


def test_transcribe_example_prints_timed_segments(
    server: responses.RequestsMock, run_example: Any, tmp_path: Path
) -> None:
    server.post(f"{BASE}/v1/audio/transcriptions", json=TRANSCRIPTION)
    server.replace(responses.GET, f"{BASE}/v1/models", json={"object": "list", "data": [
        {"id": "whisper-tiny.en", "task": "speech-recognition", "endpoints": ["/v1/audio/transcriptions"]}]})
    clip = tmp_path / "clip.wav"
    clip.write_bytes(b"RIFF....WAVE")
    out = run_example("transcribe.py", str(clip))
    assert out == "   0.00    2.64  The quick brown fox.\n(en, 2.9 s of audio)\n"
    body = server.calls[-1].request.body
    assert b'name="response_format"\r\n\r\nverbose_json' in body and b"RIFF....WAVE" in body


def test_structured_output_example(server: responses.RequestsMock, run_example: Any) -> None:
    fact = {"role": "assistant", "content": '{"subject": "Eiffel Tower", "place": "Paris", "year": 1889}'}
    call = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}
    for message, finish in ((fact, "stop"), (call, "tool_calls")):
        server.post(f"{BASE}/v1/chat/completions", json={"choices": [
            {"index": 0, "message": message, "finish_reason": finish}]})
    out = run_example("structured_output.py")
    assert "Eiffel Tower | Paris | 1889" in out and "call get_weather({'city': 'Paris'})" in out
    sent = json.loads(server.calls[1].request.body)
    assert sent["response_format"]["json_schema"]["schema"]["required"] == ["subject", "place", "year"]


def test_async_chat_example(run_example: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    from maas_client import _async_transport

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json=MAAS_MODELS)
        if json.loads(request.content).get("stream"):
            return httpx.Response(200, headers={"Content-Type": "text/event-stream"},
                                  content=sse(chat_chunk(""), chat_chunk("Paris.")))
        return httpx.Response(200, json={"choices": [{"message": {"role": "assistant", "content": "Paris."}}]},
                              headers={"X-Request-ID": "req-7"})

    monkeypatch.setattr(_async_transport, "new_http_client",
                        lambda: httpx.AsyncClient(transport=httpx.MockTransport(answer)))
    out = run_example("async_chat.py", "Capital of France?", "Capital of Italy?")
    assert out.count("Paris.  (request req-7)") == 2 and out.endswith("Paris.\n")
