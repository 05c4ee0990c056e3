"""Speech against the real server (gunicorn, default config): the openai package, huggingface_hub's InferenceClient
and maas' own client, unmodified, on the committed speech clips."""

from __future__ import annotations

import openai
import pytest
from huggingface_hub import InferenceClient

from maas_client import Client
from tests.speech_clips import (
    LONG,
    LONG_SCRIPT,
    MAX_LONG_WER,
    MAX_SHORT_WER,
    SHORT,
    SHORT_SCRIPT,
    word_error_rate,
    words,
)

MODEL = "whisper-tiny.en"


@pytest.fixture(scope="module")
def oai(server_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server_url}/v1", api_key="unused", max_retries=0)


@pytest.mark.parametrize("response_format", ["json", "text", "srt", "vtt", "verbose_json"])
def test_openai_package_transcribes_every_format(oai: openai.OpenAI, response_format: str) -> None:
    with SHORT.open("rb") as audio:
        result = oai.audio.transcriptions.create(model=MODEL, file=audio, response_format=response_format)  # type: ignore[call-overload]
    text = result if isinstance(result, str) else result.text
    assert word_error_rate([SHORT_SCRIPT["text"]], [text]) <= MAX_SHORT_WER, text
    if response_format == "verbose_json":
        assert result.segments and result.duration == pytest.approx(SHORT_SCRIPT["duration"], abs=0.05)
    if response_format in ("srt", "vtt"):
        assert " --> " in text and text.startswith("1\n" if response_format == "srt" else "WEBVTT\n\n")


def test_openai_package_gets_word_timestamps(oai: openai.OpenAI) -> None:
    with SHORT.open("rb") as audio:
        result = oai.audio.transcriptions.create(model=MODEL, file=audio, response_format="verbose_json",
                                                 timestamp_granularities=["word", "segment"])
    assert result.words and words(" ".join(w.word for w in result.words)) == words(result.text)
    assert all(0 <= w.start <= w.end <= result.duration for w in result.words)


def test_openai_package_translation_is_refused_by_an_english_only_model(oai: openai.OpenAI) -> None:
    with SHORT.open("rb") as audio, pytest.raises(openai.BadRequestError) as refused:
        oai.audio.translations.create(model=MODEL, file=audio)
    assert refused.value.code == "translation_unsupported"


def test_hugging_face_inference_client(server_url: str) -> None:
    result = InferenceClient(base_url=f"{server_url}/models/{MODEL}").automatic_speech_recognition(str(SHORT))
    assert word_error_rate([SHORT_SCRIPT["text"]], [result.text]) <= MAX_SHORT_WER, result.text
    assert result.chunks and result.chunks[0].timestamp[0] <= 0.5


def test_maas_client_transcribes_a_minute_in_chunks(server_url: str) -> None:
    with Client(server_url) as client:
        result = client.transcribe(LONG)
    spoken = " ".join(sentence["text"] for sentence in LONG_SCRIPT["sentences"])
    assert word_error_rate([spoken], [result.text]) <= MAX_LONG_WER, result.text
    assert result.segments[-1].start > LONG_SCRIPT["sentences"][-1]["start"] - 2.0
    assert "maas-transcription" in result._repr_html_()
