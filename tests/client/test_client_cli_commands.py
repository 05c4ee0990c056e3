"""The ``maas`` command's faces, usage, speech translation, structured chat and drawing (main(argv) against
a mocked server)."""

from __future__ import annotations

import base64
import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import responses

from maas_client.cli import _parser, main
from tests.client.client_support import BASE, completion_chunk, sse

Image = pytest.importorskip("PIL.Image")

GREY = (128, 128, 128)
FACE = {"score": 0.999, "box": {"x1": 10, "y1": 20, "x2": 50, "y2": 70}}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def _base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAAS_BASE_URL", BASE)


@pytest.fixture
def grey_png(tmp_path: Path) -> Path:
    """A plain grey 200x120 PNG: any pixel that is not grey was drawn."""
    path = tmp_path / "street.png"
    Image.new("RGB", (200, 120), GREY).save(path)
    return path


def chat_reply(message: dict[str, Any], finish: str = "stop") -> dict[str, Any]:
    return {"object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}]}


WEATHER_CALL = {"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris", "days": 3}'}}


# ---------------------------------------------------------------------- faces


def test_compare_faces_prints_the_distance_and_the_verdict(
    mocked: responses.RequestsMock, capsys: pytest.CaptureFixture[str], grey_png: Path
) -> None:
    vectors = [{"index": 0, "faces": [{**FACE, "embedding": [0.0, 0.0]}]},
               {"index": 1, "faces": [{**FACE, "embedding": [0.3, 0.4]}]}]
    mocked.post(f"{BASE}/v1/faces/embeddings", json={"model": "dlib-face-recognition", "data": vectors})
    code, out, _ = run(capsys, "compare-faces", str(grey_png), str(grey_png), "--model", "dlib-face-recognition")
    assert code == 0
    assert out == f"{grey_png} vs {grey_png}: distance 0.500 -> the same person (threshold 0.6)\n"
    assert mocked.calls[0].request.body.count(b'name="image"') == 2

    code, out, _ = run(capsys, "compare-faces", str(grey_png), str(grey_png), "--threshold", "0.4",
                       "--model", "dlib-face-recognition")
    assert (code, out.endswith("-> different people (threshold 0.4)\n")) == (0, True)


def test_compare_faces_without_a_face_exits_1(
    mocked: responses.RequestsMock, capsys: pytest.CaptureFixture[str], grey_png: Path
) -> None:
    mocked.post(f"{BASE}/v1/faces/embeddings", json={"data": [{"index": 0, "faces": []},
                                                              {"index": 1, "faces": [FACE]}]})
    code, out, err = run(capsys, "compare-faces", str(grey_png), str(grey_png), "--model", "m")
    assert (code, out) == (1, "")
    assert "no face found in image a" in err


# ---------------------------------------------------------------------- usage


USAGE = {"object": "usage", "key": "ci", "since": 1767225600.0, "data": [
    {"model": "all-minilm-l6-v2", "requests": 1170, "errors": 0, "prompt_tokens": 91941, "completion_tokens": 0,
     "total_tokens": 91941, "mean_latency_ms": 159.24},
    {"model": "smollm2-135m-instruct", "requests": 12, "errors": 1, "prompt_tokens": 40, "completion_tokens": 300,
     "total_tokens": 340, "mean_latency_ms": 1311.5}]}


def test_usage_prints_a_table_with_a_total(mocked: responses.RequestsMock, capsys: pytest.CaptureFixture[str]) -> None:
    mocked.get(f"{BASE}/v1/usage", json=USAGE)
    code, out, _ = run(capsys, "usage", "--since", "2026-01-01")
    assert code == 0
    assert out.splitlines() == [
        "usage of ci, since 2026-01-01 00:00:00 UTC",
        "MODEL                  REQUESTS  ERRORS  PROMPT_TOKENS  COMPLETION_TOKENS  TOTAL_TOKENS  MEAN_MS",
        "all-minilm-l6-v2           1170       0          91941                  0         91941    159.2",
        "smollm2-135m-instruct        12       1             40                300           340   1311.5",
        "(all)                      1182       1          91981                300         92281        -",
    ]
    assert mocked.calls[0].request.params == {"since": "2026-01-01"}


def test_usage_without_calls_and_as_json(mocked: responses.RequestsMock, capsys: pytest.CaptureFixture[str]) -> None:
    empty = {"object": "usage", "key": None, "since": None, "data": []}
    mocked.get(f"{BASE}/v1/usage", json=empty)
    assert run(capsys, "usage") == (0, "usage of (no key), all time: no calls\n", "")
    code, out, _ = run(capsys, "usage", "--json")
    assert (code, json.loads(out)) == (0, empty)


# ---------------------------------------------------------------------- speech


def test_translate_posts_the_file_and_prints_the_english_text(
    mocked: responses.RequestsMock, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    clip = tmp_path / "interview-fr.wav"
    clip.write_bytes(b"RIFF....WAVE")
    mocked.post(f"{BASE}/v1/audio/translations", json={
        "task": "translate", "language": "fr", "duration": 3.1, "text": "Good morning, everyone.",
        "segments": [{"id": 0, "start": 0.0, "end": 3.1, "text": " Good morning, everyone."}]})
    assert run(capsys, "translate", str(clip), "--model", "whisper-base") == (0, "Good morning, everyone.\n", "")
    body = mocked.calls[0].request.body
    assert b"RIFF....WAVE" in body and b'name="model"\r\n\r\nwhisper-base' in body
    code, out, _ = run(capsys, "translate", str(clip), "--model", "whisper-base", "--timestamps")
    assert (code, out) == (0, "[   0.00 -    3.10] Good morning, everyone.\n")


# ---------------------------------------------------------------------- chat: structured output and tools


def test_chat_response_format_json_asks_for_a_json_object(
    mocked: responses.RequestsMock, capsys: pytest.CaptureFixture[str]
) -> None:
    mocked.post(f"{BASE}/v1/chat/completions", json=chat_reply({"role": "assistant", "content": '{"a": 1}'}))
    assert run(capsys, "chat", "JSON please", "--model", "m", "--response-format", "json") == (0, '{"a": 1}\n', "")
    assert json.loads(mocked.calls[0].request.body)["response_format"] == {"type": "json_object"}


def test_chat_response_format_file_sends_the_schema_named_after_the_file(
    mocked: responses.RequestsMock, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    path = tmp_path / "city.schema.json"
    path.write_text(json.dumps(schema))
    mocked.post(f"{BASE}/v1/chat/completions", json=chat_reply({"role": "assistant", "content": '{"city": "Oslo"}'}))
    code, out, _ = run(capsys, "chat", "A city?", "--model", "m", "--response-format", str(path))
    assert (code, out) == (0, '{"city": "Oslo"}\n')
    assert json.loads(mocked.calls[0].request.body)["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "city", "schema": schema, "strict": True}}


def test_chat_response_format_of_a_file_that_is_not_json_is_a_usage_error(
    mocked: responses.RequestsMock, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "schema.json"
    path.write_text("{not json")
    code, out, err = run(capsys, "chat", "x", "--model", "m", "--response-format", str(path))
    assert (code, out, len(mocked.calls)) == (2, "", 0)
    assert "is not JSON" in err and "Traceback" not in err


@pytest.fixture
def tools_file(tmp_path: Path) -> Path:
    path = tmp_path / "tools.json"
    path.write_text(json.dumps([{"type": "function", "function": {
        "name": "get_weather", "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]))
    return path


def test_chat_tools_sends_them_and_prints_each_call(
    mocked: responses.RequestsMock, capsys: pytest.CaptureFixture[str], tools_file: Path
) -> None:
    mocked.post(f"{BASE}/v1/chat/completions",
                json=chat_reply({"role": "assistant", "content": None, "tool_calls": [WEATHER_CALL]}, "tool_calls"))
    code, out, _ = run(capsys, "chat", "Weather in Paris?", "--model", "m", "--tools", str(tools_file))
    assert (code, out) == (0, '-> get_weather(city="Paris", days=3)\n')
    sent = json.loads(mocked.calls[0].request.body)["tools"]
    assert [tool["function"]["name"] for tool in sent] == ["get_weather"]


def test_chat_stream_prints_tool_calls_after_the_text(
    mocked: responses.RequestsMock, capsys: pytest.CaptureFixture[str], tools_file: Path
) -> None:
    chunks = [{"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "Checking."}}]},
              {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {
                  "tool_calls": [{**WEATHER_CALL, "index": 0}]}, "finish_reason": "tool_calls"}]}]
    mocked.post(f"{BASE}/v1/chat/completions", body=sse(*chunks), content_type="text/event-stream")
    code, out, _ = run(capsys, "chat", "Weather?", "--model", "m", "--tools", str(tools_file), "--stream")
    assert (code, out) == (0, 'Checking.\n-> get_weather(city="Paris", days=3)\n')


def test_chat_tools_file_without_tool_definitions_is_a_usage_error(
    mocked: responses.RequestsMock, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "tools.json"
    path.write_text('[{"name": 3}]')
    code, _, err = run(capsys, "chat", "x", "--model", "m", "--tools", str(path))
    assert (code, len(mocked.calls)) == (2, 0)
    assert "expected a list of tool definitions" in err


# ---------------------------------------------------------------------- drawing


DETECTIONS = {"object": "list", "model": "yolov3-tiny", "data": [{"index": 0, "width": 200, "height": 120, "objects": [
    {"label": "car", "score": 0.91, "box": {"x1": 40, "y1": 50, "x2": 160, "y2": 110}}]}]}


def drawn(path: Path) -> Any:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.convert("RGB")


def test_detect_objects_draw_writes_a_png_with_the_box_and_its_label(
    mocked: responses.RequestsMock, capsys: pytest.CaptureFixture[str], grey_png: Path, tmp_path: Path
) -> None:
    mocked.post(f"{BASE}/v1/detect/objects", json=DETECTIONS)
    out_png = tmp_path / "boxes.png"
    code, out, err = run(capsys, "detect-objects", str(grey_png), "--model", "yolov3-tiny", "--draw", str(out_png))
    assert code == 0 and "car" in out and f"drew 1 box(es) on {out_png}" in err
    image = drawn(out_png)
    assert image.size == (200, 120)
    assert image.getpixel((40, 80)) != GREY and image.getpixel((160, 80)) != GREY  # the box's left and right edges
    assert image.getpixel((100, 80)) == GREY and image.getpixel((10, 10)) == GREY  # inside it and far away: as sent
    # The label "car 0.91" sits on a filled tab just above the box, in light text on the dark red tab.
    tab_colour = image.getpixel((41, 48))
    assert tab_colour != GREY and image.getpixel((41, 48)) == image.getpixel((41, 40))
    tab = [image.getpixel((x, y)) for x in range(40, 90) for y in range(36, 50)]
    assert any(sum(pixel) > 600 for pixel in tab)  # text, contrasting with the tab


def test_detect_faces_draw_boxes_each_face(
    mocked: responses.RequestsMock, capsys: pytest.CaptureFixture[str], grey_png: Path, tmp_path: Path
) -> None:
    mocked.post(f"{BASE}/v1/detect/faces", json={"model": "mtcnn", "data": [
        {"index": 0, "width": 200, "height": 120, "faces": [FACE]}]})
    out_png = tmp_path / "faces.png"
    code, _, _ = run(capsys, "detect-faces", str(grey_png), "--model", "mtcnn", "--draw", str(out_png))
    image = drawn(out_png)
    assert code == 0
    assert image.getpixel((30, 69)) != GREY and image.getpixel((30, 50)) == GREY  # bottom edge drawn; inside not
    assert image.getpixel((150, 100)) == GREY


def test_draw_without_pillow_names_the_package_and_calls_nothing(
    mocked: responses.RequestsMock, capsys: pytest.CaptureFixture[str], grey_png: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "PIL", None)  # `from PIL import ...` now raises ImportError
    code, out, err = run(capsys, "detect-objects", str(grey_png), "--model", "m", "--draw", str(tmp_path / "b.png"))
    assert (code, out, len(mocked.calls)) == (2, "", 0)
    assert "drawing needs Pillow" in err and "pip install pillow" in err


def test_draw_of_several_images_is_a_usage_error(
    mocked: responses.RequestsMock, capsys: pytest.CaptureFixture[str], grey_png: Path, tmp_path: Path
) -> None:
    code, _, err = run(capsys, "detect-faces", str(grey_png), str(grey_png), "--model", "m",
                       "--draw", str(tmp_path / "b.png"))
    assert (code, len(mocked.calls)) == (2, 0)
    assert "--draw draws one image" in err


def test_classify_image_explain_writes_the_servers_overlay(
    mocked: responses.RequestsMock, capsys: pytest.CaptureFixture[str], grey_png: Path, tmp_path: Path
) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (255, 0, 0)).save(buffer, format="PNG")
    mocked.post(f"{BASE}/v1/classify/image", json={"object": "list", "model": "efficientnet-lite0", "data": [
        {"index": 0, "labels": [{"label": "tabby cat", "score": 0.8}],
         "explanation": {"label": "tabby cat", "grid": [[1.0]], "overlay_png": base64.b64encode(buffer.getvalue())
                         .decode()}}]})
    out_png = tmp_path / "heatmap.png"
    code, out, err = run(capsys, "classify-image", str(grey_png), "--model", "m", "--explain", str(out_png))
    assert (code, out) == (0, " 0.8000  tabby cat\n")
    assert out_png.read_bytes() == buffer.getvalue() and "heatmap for 'tabby cat'" in err
    assert b'name="explain_overlay"\r\n\r\ntrue' in mocked.calls[0].request.body


def test_classify_image_explain_from_a_server_without_overlays_exits_1(
    mocked: responses.RequestsMock, capsys: pytest.CaptureFixture[str], grey_png: Path, tmp_path: Path
) -> None:
    mocked.post(f"{BASE}/v1/classify/image", json={"data": [{"index": 0, "labels": [{"label": "cat", "score": 1}]}]})
    code, _, err = run(capsys, "classify-image", str(grey_png), "--model", "m", "--explain", str(tmp_path / "h.png"))
    assert code == 1 and "no heatmap overlay" in err
    assert not (tmp_path / "h.png").exists()


# ---------------------------------------------------------------------- help


def commands() -> list[str]:
    subparsers = _parser()._subparsers
    assert subparsers is not None
    return [name for action in subparsers._group_actions for name in getattr(action, "choices", {})]


@pytest.mark.parametrize("command", commands())
def test_every_commands_help_ends_with_examples(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, command, "--help")
    examples = out.split("examples:\n", 1)[1].splitlines()
    assert code == 0 and examples and all(line.startswith(f"  maas {command}") for line in examples)


def test_generate_stream_still_prints_text_only(
    mocked: responses.RequestsMock, capsys: pytest.CaptureFixture[str]
) -> None:
    mocked.post(f"{BASE}/v1/completions", body=sse(completion_chunk("a"), completion_chunk("b")),
                content_type="text/event-stream")
    assert run(capsys, "generate", "x", "--model", "m", "--stream") == (0, "ab\n", "")
