"""Speech against the real server (gunicorn, default config): the openai package, huggingface_hub's InferenceClient
and maas' own client, unmodified, on the committed speech clips."""

from __future__ import annotations

import openai
import pytest
from huggingface_hub import InferenceClient

from maas_client import Client
from tests.speech_clips import LONG, LONG_KEYWORDS, SHORT, SHORT_WORDS, words

MODEL = "whisper-tiny.en"


@pytest.fixture(scope="module")
def oai(server_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server_url}/v1", api_key="unused", max_retries=0)


@pytest.mark.parametrize("response_format", ["json", "text", "srt", "vtt", "verbose_json"])
def test_openai_package_transcribes_every_format(oai: openai.OpenAI, response_format: str) -> None:
    with SHORT.open("rb") as audio:
        result = oai.audio.transcriptions.create(model=MODEL, file=audio, response_format=response_format)  # type: ignore[call-overload]
    text = result if isinstance(result, str) else result.text
    assert sum(word in words(text) for word in SHORT_WORDS) >= 4, text
    if response_format == "verbose_json":
        assert result.segments[0].start == 0.0 and result.duration == pytest.approx(2.91, abs=0.05)
    if response_format == "srt":
        assert text.startswith("1\n00:00:00,000 --> ")


def test_openai_package_gets_word_timestamps(oai: openai.OpenAI) -> None:
    with SHORT.open("rb") as audio:
        result = oai.audio.transcriptions.create(model=MODEL, file=audio, response_format="verbose_json",
                                                 timestamp_granularities=["word", "segment"])
    assert [w.word.lower() for w in result.words or []][:3] == ["the", "quick", "brown"]


def test_openai_package_translation_is_refused_by_an_english_only_model(oai: openai.OpenAI) -> None:
    with SHORT.open("rb") as audio, pytest.raises(openai.BadRequestError) as refused:
        oai.audio.translations.create(model=MODEL, file=audio)
    assert refused.value.code == "translation_unsupported"


def test_hugging_face_inference_client(server_url: str) -> None:
    result = InferenceClient(base_url=f"{server_url}/models/{MODEL}").automatic_speech_recognition(str(SHORT))
    assert "brown fox" in result.text.lower()
    assert result.chunks and result.chunks[0].timestamp[0] == 0.0


def test_maas_client_transcribes_a_minute_in_chunks(server_url: str) -> None:
    with Client(server_url) as client:
        result = client.transcribe(LONG)
    heard = words(result.text)
    assert sum(keyword in heard for keyword in LONG_KEYWORDS) >= 12, result.text
    assert result.segments[-1].start > 55 and "maas-transcription" in result._repr_html_()
