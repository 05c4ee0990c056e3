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


def serving(server: responses.RequestsMock, model: str, task: str, *routes: str) -> None:
    """GET /v1/models lists ``model`` as serving ``routes``, beside the usual ones."""
    entry = {"id": model, "object": "model", "task": task, "endpoints": list(routes)}
    server.replace(responses.GET, f"{BASE}/v1/models", json={"object": "list", "data": [*MAAS_MODELS["data"], entry]})


# What POST /v1/ocr answers (maas_server/api/ocr.py's ReadTextList) for the example's invoice.
READINGS = {"object": "list", "model": "pp-ocrv6", "data": [{"index": 0, "width": 480, "height": 150,
    "text": "Invoice 2024-117\nTotal due: $1,284.50",
    "lines": [{"text": "Invoice 2024-117", "score": 0.997, "box": [[20.0, 17.0], [205.0, 17.0], [205.0, 40.0],
                                                                   [20.0, 40.0]]},
              {"text": "Total due: $1,284.50", "score": 0.981, "box": [[20.0, 59.0], [240.0, 59.0], [240.0, 82.0],
                                                                       [20.0, 82.0]]}]}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 0, "total_tokens": 1}}


def test_read_text_example_prints_each_line_then_the_text(server: responses.RequestsMock, run_example: Any) -> None:
    pytest.importorskip("PIL.Image")
    serving(server, "pp-ocrv6", "ocr", "/v1/ocr")
    server.post(f"{BASE}/v1/ocr", json=READINGS)
    out = run_example("read_text.py")
    assert out == ("the invoice (pp-ocrv6):\n 0.997  Invoice 2024-117\n 0.981  Total due: $1,284.50\n\n"
                   "Invoice 2024-117\nTotal due: $1,284.50\n")
    body = server.calls[-1].request.body
    assert b"\x89PNG" in body and b'name="model"\r\n\r\npp-ocrv6' in body  # the drawn invoice, for the listed model


def test_read_text_example_with_a_path(server: responses.RequestsMock, run_example: Any, tmp_path: Path) -> None:
    serving(server, "pp-ocrv6", "ocr", "/v1/ocr")
    server.post(f"{BASE}/v1/ocr", json=READINGS)
    scan = tmp_path / "scan.png"
    scan.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    assert run_example("read_text.py", str(scan)).startswith("scan.png (pp-ocrv6):\n 0.997  Invoice 2024-117\n")
    assert b"\x89PNG\r\n\x1a\nfake" in server.calls[-1].request.body


# What POST /v1/srl answers (maas_server/api/roles.py's RoleList) for one sentence.
ROLES = {"object": "list", "model": "srl-dependency-rules", "data": [{"index": 0, "method": "dependency-rules",
    "words": ["The", "window", "was", "broken", "by", "the", "boy", "yesterday", "."],
    "verbs": [{"verb": "broken", "start": 15, "end": 21,
               "tags": ["B-ARG1", "I-ARG1", "O", "B-V", "B-ARG0", "I-ARG0", "I-ARG0", "B-ARGM-TMP", "O"],
               "description": "[ARG1: The window] was [V: broken] [ARG0: by the boy] [ARGM-TMP: yesterday] .",
               "arguments": [{"role": "ARG1", "text": "The window", "start": 0, "end": 10},
                             {"role": "ARG0", "text": "by the boy", "start": 22, "end": 32},
                             {"role": "ARGM-TMP", "text": "yesterday", "start": 33, "end": 42}]}]}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 0, "total_tokens": 9}}


def test_semantic_roles_example_prints_who_did_what(server: responses.RequestsMock, run_example: Any) -> None:
    serving(server, "srl-dependency-rules", "semantic-role-labeling", "/v1/srl")
    server.post(f"{BASE}/v1/srl", json=ROLES)
    sentence = "The window was broken by the boy yesterday."
    out = run_example("semantic_roles.py", sentence)
    assert out == (f"{sentence}  (dependency-rules)\n"
                   "  [ARG1: The window] was [V: broken] [ARG0: by the boy] [ARGM-TMP: yesterday] .\n"
                   "    ARG1      The window\n    ARG0      by the boy\n    ARGM-TMP  yesterday\n"
                   "(srl-dependency-rules)\n")
    assert json.loads(server.calls[-1].request.body) == {"model": "srl-dependency-rules", "input": [sentence]}


# What POST /v1/classify/scene answers (maas_server/api/scenes.py's SceneList): the heuristic calls the
# espresso photo an indoor cafe and finds no telling clue in the cat close-up.
SCENES = {"object": "list", "model": "efficientnet-lite0", "detector": "yolov3-tiny", "data": [
    {"index": 0, "top_level": "indoor", "label": "cafe", "score": 1.0, "method": "heuristic",
     "evidence": [{"source": "imagenet", "label": "espresso", "score": 0.71},
                  {"source": "coco", "label": "cup", "score": 0.64}]},
    {"index": 1, "top_level": None, "label": None, "score": 0.0, "method": "heuristic",
     "evidence": [{"source": "imagenet", "label": "tabby cat", "score": 0.55}]}],
    "usage": {"prompt_tokens": 2, "completion_tokens": 0, "total_tokens": 2}}


def test_scene_example_prints_the_labels_method_and_evidence(
    server: responses.RequestsMock, run_example: Any
) -> None:
    server.post(f"{BASE}/v1/classify/scene", json=SCENES)
    out = run_example("scene.py")
    assert out == ("(efficientnet-lite0 and yolov3-tiny)\n"
                   "coffee.jpg: indoor / cafe (1.00), heuristic\n"
                   "  imagenet  0.71  espresso\n  coco      0.64  cup\n"
                   "cat.jpg: no telling clue, heuristic\n  imagenet  0.55  tabby cat\n")
    assert server.calls[-1].request.body.count(b"\xff\xd8\xff") == 2  # both sample photos, as JPEG


def test_image_similarity_example_prints_the_cosine_matrix(
    server: responses.RequestsMock, run_example: Any, tmp_path: Path
) -> None:
    serving(server, "efficientnet-lite0", "image-classification", "/v1/classify/image", "/v1/images/embeddings")
    # unit vectors, as the server's (maas_server/api/image_embeddings.py answers OpenAI's embedding list)
    vectors = [[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]]
    server.post(f"{BASE}/v1/images/embeddings", json={"object": "list", "model": "efficientnet-lite0",
        "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
        "usage": {"prompt_tokens": 3, "completion_tokens": 0, "total_tokens": 3}})
    images = [tmp_path / f"{name}.jpg" for name in ("a", "b", "c")]
    for image in images:
        image.write_bytes(b"\xff\xd8\xff\xe0fake")
    rows = run_example("image_similarity.py", *map(str, images)).splitlines()
    assert rows[0] == "(efficientnet-lite0, 2 dimensions)"
    assert rows[1].split() == ["a", "b", "c"]
    assert [row.split() for row in rows[2:]] == [["a", "1.000", "0.800", "0.000"], ["b", "0.800", "1.000", "0.600"],
                                                  ["c", "0.000", "0.600", "1.000"]]


# What POST /v1/pii answers (maas_server/api/pii.py's PiiList) with "redact": "type".
REDACTION = {"object": "list", "model": "pii", "data": [
    {"index": 0, "redacted": "Mail <PERSON> at <EMAIL_ADDRESS>.", "entities": [
        {"type": "PERSON", "start": 5, "end": 17, "score": 0.85, "text": None},
        {"type": "EMAIL_ADDRESS", "start": 21, "end": 36, "score": 1.0, "text": None}]}],
    "usage": {"prompt_tokens": 6, "completion_tokens": 0, "total_tokens": 6}}


def test_redact_example_prints_the_spans_and_the_redacted_text(
    server: responses.RequestsMock, run_example: Any
) -> None:
    serving(server, "pii", "pii", "/v1/pii")
    server.post(f"{BASE}/v1/pii", json=REDACTION)
    text = "Mail Ada Lovelace at ada@example.com."
    out = run_example("redact.py", text)
    assert out == ("  PERSON         0.85  Ada Lovelace\n  EMAIL_ADDRESS  1.00  ada@example.com\n"
                   "Mail <PERSON> at <EMAIL_ADDRESS>.\n\n(pii)\n")
    assert json.loads(server.calls[-1].request.body) == {"model": "pii", "input": [text], "redact": "type"}


def test_redact_example_masks_on_request(server: responses.RequestsMock, run_example: Any) -> None:
    serving(server, "pii", "pii", "/v1/pii")
    masked = {**REDACTION, "data": [{**REDACTION["data"][0], "redacted": f"Mail {'*' * 12} at {'*' * 15}."}]}
    server.post(f"{BASE}/v1/pii", json=masked)
    out = run_example("redact.py", "--mask", "Mail Ada Lovelace at ada@example.com.")
    assert f"Mail {'*' * 12} at {'*' * 15}.\n" in out
    assert json.loads(server.calls[-1].request.body)["redact"] == "mask"
