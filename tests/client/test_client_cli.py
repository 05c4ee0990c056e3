"""The ``maas`` command: output, options and exit codes (main(argv) against a mocked server)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import responses

import maas_client as maas
from maas_client.cli import main
from tests.client.client_support import BASE, ENTITIES, MAAS_MODELS, completion_chunk, sse

COMPLETION = {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "smollm2-135m-instruct",
              "choices": [{"index": 0, "text": " there was", "finish_reason": "length", "logprobs": None}],
              "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}}
CHAT = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "smollm2-135m-instruct",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}]}
LABELS = {"object": "list", "model": "m", "data": [
    {"index": 0, "labels": [{"label": "positive", "score": 0.875}, {"label": "negative", "score": 0.125}]}]}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def _base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAAS_BASE_URL", BASE)


def body_of(mocked: responses.RequestsMock, index: int = -1) -> dict:
    return json.loads(mocked.calls[index].request.body)


def test_generate_prints_the_text(server: responses.RequestsMock, capsys: pytest.CaptureFixture[str]) -> None:
    server.post(f"{BASE}/v1/completions", json=COMPLETION)
    code, out, err = run(capsys, "generate", "Once upon a time", "--max-tokens", "5", "--temperature", "0")
    assert (code, out, err) == (0, " there was\n", "")
    assert body_of(server) == {"model": "smollm2-135m-instruct", "prompt": "Once upon a time",
                               "max_tokens": 5, "temperature": 0.0}


def test_generate_json_prints_the_server_json(
    mocked: responses.RequestsMock, capsys: pytest.CaptureFixture[str]
) -> None:
    mocked.post(f"{BASE}/v1/completions", json=COMPLETION)
    code, out, _ = run(capsys, "generate", "x", "--model", "m", "--json")
    assert code == 0
    assert json.loads(out) == COMPLETION


def test_generate_stream_prints_text_as_it_comes(
    mocked: responses.RequestsMock, capsys: pytest.CaptureFixture[str]
) -> None:
    mocked.post(f"{BASE}/v1/completions", body=sse(completion_chunk(" there"), completion_chunk(" was")),
                content_type="text/event-stream")
    code, out, _ = run(capsys, "generate", "x", "--model", "m", "--stream")
    assert (code, out) == (0, " there was\n")
    assert body_of(mocked)["stream"] is True


def test_stream_json_prints_one_chunk_per_line(
    mocked: responses.RequestsMock, capsys: pytest.CaptureFixture[str]
) -> None:
    mocked.post(f"{BASE}/v1/completions", body=sse(completion_chunk("a"), completion_chunk("b")),
                content_type="text/event-stream")
    code, out, _ = run(capsys, "generate", "x", "--model", "m", "--stream", "--json")
    assert code == 0
    assert [json.loads(line)["choices"][0]["text"] for line in out.splitlines()] == ["a", "b"]


def test_chat_sends_system_and_user_messages(
    mocked: responses.RequestsMock, capsys: pytest.CaptureFixture[str]
) -> None:
    mocked.post(f"{BASE}/v1/chat/completions", json=CHAT)
    code, out, _ = run(capsys, "chat", "Hi", "How are you?", "--system", "Be brief.", "--model", "m",
                       "--api-key", "sk-cli")
    assert (code, out) == (0, "Hello!\n")
    assert body_of(mocked)["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "user", "content": "How are you?"},
    ]
    assert mocked.calls[0].request.headers["Authorization"] == "Bearer sk-cli"


def test_chat_reads_the_message_from_stdin(
    mocked: responses.RequestsMock, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    mocked.post(f"{BASE}/v1/chat/completions", json=CHAT)
    monkeypatch.setattr("sys.stdin", io.StringIO("Hi from a pipe\n"))
    code, out, _ = run(capsys, "chat", "--model", "m")
    assert (code, out) == (0, "Hello!\n")
    assert body_of(mocked)["messages"] == [{"role": "user", "content": "Hi from a pipe"}]


def test_chat_without_any_message_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    tty = io.StringIO()
    tty.isatty = lambda: True  # type: ignore[method-assign]
    monkeypatch.setattr("sys.stdin", tty)
    code, out, err = run(capsys, "chat", "--model", "m")
    assert (code, out) == (2, "")
    assert "give a message" in err


def test_embed_prints_one_vector_per_line(server: responses.RequestsMock, capsys: pytest.CaptureFixture[str]) -> None:
    server.post(f"{BASE}/v1/embeddings", json={"data": [{"index": 0, "embedding": [0.6, 0.8]},
                                                        {"index": 1, "embedding": [1.0, 0.0]}]})
    code, out, _ = run(capsys, "embed", "a", "b")
    assert code == 0
    assert [json.loads(line) for line in out.splitlines()] == [[0.6, 0.8], [1.0, 0.0]]


def test_classify_text_prints_scores_and_labels(
    server: responses.RequestsMock, capsys: pytest.CaptureFixture[str]
) -> None:
    server.post(f"{BASE}/v1/classify/text", json=LABELS)
    code, out, _ = run(capsys, "classify-text", "I love it", "--labels", "positive", "negative")
    assert code == 0
    assert out == " 0.8750  positive\n 0.1250  negative\n"
    assert body_of(server)["labels"] == ["positive", "negative"]


def test_classify_image_uploads_the_file(
    mocked: responses.RequestsMock, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    image = tmp_path / "cat.jpg"
    image.write_bytes(b"\xff\xd8\xff\xe0fake")
    mocked.post(f"{BASE}/v1/classify/image", json=LABELS)
    code, out, _ = run(capsys, "classify-image", str(image), "--model", "m", "--top-k", "2")
    assert code == 0 and "positive" in out
    assert b'filename="cat.jpg"' in mocked.calls[0].request.body


def test_classify_image_of_a_missing_file_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "classify-image", "/no/such/cat.jpg", "--model", "m")
    assert (code, out) == (2, "")
    assert "No such file" in err and "Traceback" not in err


def test_entities_prints_one_line_per_entity(
    server: responses.RequestsMock, capsys: pytest.CaptureFixture[str]
) -> None:
    server.post(f"{BASE}/v1/entities", json=ENTITIES)
    code, out, _ = run(capsys, "entities", "Angela Merkel visited Paris in 2019.")
    assert code == 0
    assert out == ("    0:13     PERSON        Angela Merkel\n"
                   "   22:27     GPE           Paris\n"
                   "   31:35     DATE          2019\n")
    assert body_of(server) == {"model": "en-core-web-sm", "input": ["Angela Merkel visited Paris in 2019."],
                               "aggregation": "simple"}


def test_entities_per_token_of_several_texts_with_scores(
    mocked: responses.RequestsMock, capsys: pytest.CaptureFixture[str]
) -> None:
    mocked.post(f"{BASE}/v1/entities", json={"model": "m", "data": [
        {"index": 0, "entities": [{"text": "Ada", "label": "B-PER", "start": 0, "end": 3, "score": 0.9}]},
        {"index": 1, "entities": []}]})
    code, out, _ = run(capsys, "entities", "Ada wrote.", "Nothing.", "--model", "m", "--aggregation", "none")
    assert code == 0
    assert out == "# Ada wrote.\n    0:3      B-PER         Ada  (0.900)\n\n# Nothing.\n(no entities)\n"
    assert body_of(mocked)["aggregation"] == "none"


def test_entities_reads_stdin_and_prints_json(
    mocked: responses.RequestsMock, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    mocked.post(f"{BASE}/v1/entities", json=ENTITIES)
    monkeypatch.setattr("sys.stdin", io.StringIO("Angela Merkel visited Paris in 2019.\n"))
    code, out, _ = run(capsys, "entities", "--model", "en-core-web-sm", "--json")
    assert code == 0 and json.loads(out) == ENTITIES
    assert body_of(mocked)["input"] == ["Angela Merkel visited Paris in 2019."]
DETECTIONS = {"object": "list", "model": "yolov3-tiny", "data": [
    {"index": 0, "width": 640, "height": 480, "objects": [
        {"label": "motorbike", "score": 0.93, "box": {"x1": 10.4, "y1": 20, "x2": 300, "y2": 250.6}}]},
    {"index": 1, "width": 32, "height": 32, "objects": []}]}


def test_detect_objects_prints_one_line_per_object(
    mocked: responses.RequestsMock, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    paths = [tmp_path / "street.jpg", tmp_path / "blank.png"]
    for path in paths:
        path.write_bytes(b"\xff\xd8\xff\xe0fake")
    mocked.post(f"{BASE}/v1/detect/objects", json=DETECTIONS)
    code, out, _ = run(capsys, "detect-objects", *map(str, paths), "--model", "m", "--score-threshold", "0.4",
                       "--iou-threshold", "0.5", "--max-detections", "3")
    assert code == 0
    assert out == (f"# {paths[0]} (640x480)\n 0.9300  motorbike      10 20 300 251\n\n"
                   f"# {paths[1]} (32x32)\n(nothing found)\n")
    body = mocked.calls[0].request.body
    for field, value in (("score_threshold", b"0.4"), ("iou_threshold", b"0.5"), ("max_detections", b"3")):
        assert f'name="{field}"\r\n\r\n'.encode() + value in body


def test_detect_objects_json_prints_the_server_json(
    mocked: responses.RequestsMock, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    image = tmp_path / "street.jpg"
    image.write_bytes(b"\xff\xd8\xff\xe0fake")
    mocked.post(f"{BASE}/v1/detect/objects", json=DETECTIONS)
    code, out, _ = run(capsys, "detect-objects", str(image), "--model", "m", "--json")
    assert code == 0 and json.loads(out) == DETECTIONS


def test_models_prints_a_table(server: responses.RequestsMock, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "models")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "TASK", "READY", "DEVICE", "ENDPOINTS"]
    assert lines[1].split()[:4] == ["smollm2-135m-instruct", "text-generation", "yes", "cpu"]
    assert len(lines) == 1 + len(MAAS_MODELS["data"])


def test_models_json(server: responses.RequestsMock, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "models", "--json")
    assert code == 0 and json.loads(out) == MAAS_MODELS


def test_an_api_error_exits_1_with_the_message_and_no_traceback(
    mocked: responses.RequestsMock, capsys: pytest.CaptureFixture[str]
) -> None:
    mocked.post(f"{BASE}/v1/completions", status=422, json={"error": {
        "type": "invalid_request_error", "message": "max_tokens must be at most 512", "param": "max_tokens"}})
    code, out, err = run(capsys, "generate", "x", "--model", "m", "--max-tokens", "9999")
    assert (code, out) == (1, "")
    assert "HTTP 422" in err and "max_tokens must be at most 512" in err
    assert "Traceback" not in err


def test_an_unreachable_server_exits_1(mocked: responses.RequestsMock, capsys: pytest.CaptureFixture[str]) -> None:
    import requests

    mocked.get(f"{BASE}/v1/models", body=requests.ConnectionError("[Errno 111] Connection refused"))
    code, _, err = run(capsys, "models")
    assert code == 1 and "Connection refused" in err


@pytest.mark.parametrize("argv", [[], ["nope"], ["generate", "x", "--max-tokens", "many"], ["embed"],
                                  ["entities", "x", "--aggregation", "first"]])
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2 and "usage:" in err


def test_a_bad_base_url_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "models", "--base-url", "localhost:8000")
    assert code == 2 and "http://" in err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "classify-image" in out


def test_ctrl_c_exits_130(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(self: maas.Client, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(maas.Client, "models", interrupted)
    code, _, err = run(capsys, "models")
    assert code == 130 and "Traceback" not in err


READINGS = {"object": "list", "model": "pp-ocrv6", "data": [
    {"index": 0, "width": 640, "height": 120, "text": "Invoice 2024-117\nTotal due $1,284.50",
     "lines": [{"text": "Invoice 2024-117", "score": 0.99, "box": [[10, 10], [200, 10], [200, 40], [10, 40]]},
               {"text": "Total due $1,284.50", "score": 0.97, "box": [[10, 60], [250, 60], [250, 90], [10, 90]]}]}]}


def test_ocr_prints_the_text_or_its_lines_with_scores(
    mocked: responses.RequestsMock, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    image = tmp_path / "invoice.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    mocked.post(f"{BASE}/v1/ocr", json=READINGS)
    code, out, _ = run(capsys, "ocr", str(image), "--model", "m", "--score-threshold", "0.7")
    assert code == 0 and out == "Invoice 2024-117\nTotal due $1,284.50\n"
    assert b'name="score_threshold"\r\n\r\n0.7' in mocked.calls[0].request.body
    code, out, _ = run(capsys, "ocr", str(image), "--model", "m", "--lines")
    assert code == 0 and out == "0.99  Invoice 2024-117\n0.97  Total due $1,284.50\n"


def test_srl_prints_each_verbs_description(mocked: responses.RequestsMock, capsys: pytest.CaptureFixture[str]) -> None:
    answer = {"object": "list", "model": "srl", "data": [
        {"index": 0, "words": ["The", "boy", "broke", "it", "."], "method": "dependency-rules", "verbs": [
            {"verb": "broke", "start": 8, "end": 13, "tags": ["B-ARG0", "I-ARG0", "B-V", "B-ARG1", "O"],
             "description": "[ARG0: The boy] [V: broke] [ARG1: it] .", "arguments": []}]},
        {"index": 1, "words": ["Hello", "."], "method": "dependency-rules", "verbs": []}]}
    mocked.post(f"{BASE}/v1/srl", json=answer)
    code, out, _ = run(capsys, "srl", "The boy broke it.", "Hello.", "--model", "srl")
    assert code == 0 and out == "[ARG0: The boy] [V: broke] [ARG1: it] .\n\n(no verbs)\n"
    assert json.loads(mocked.calls[0].request.body)["input"] == ["The boy broke it.", "Hello."]


def test_scene_prints_a_line_per_image_with_its_evidence(
    mocked: responses.RequestsMock, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    paths = [tmp_path / "kitchen.jpg", tmp_path / "cat.jpg"]
    for path in paths:
        path.write_bytes(b"\xff\xd8\xff\xe0fake")
    answer = {"object": "list", "model": "efficientnet-lite0", "detector": "yolov3-tiny", "data": [
        {"index": 0, "top_level": "indoor", "label": "kitchen", "score": 1.0, "method": "heuristic",
         "evidence": [{"source": "coco", "label": "oven", "score": 0.81}]},
        {"index": 1, "top_level": None, "label": None, "score": 0.0, "method": "heuristic", "evidence": []}]}
    mocked.post(f"{BASE}/v1/classify/scene", json=answer)
    code, out, _ = run(capsys, "scene", *map(str, paths), "--model", "m")
    assert code == 0
    assert out == (f"{paths[0]}\tindoor: kitchen 1.00\t[heuristic: oven 0.81]\n"
                   f"{paths[1]}\t(no telling class or object)\t[heuristic]\n")

