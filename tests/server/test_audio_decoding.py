"""Decoding and checking uploaded audio (api/audio.py) through the transcription route, with a fake speech model
that answers at once: what the route does with odd, damaged and hostile files, without running Whisper."""

from __future__ import annotations

import io
import wave
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient

from maas_server.api.audio import MAX_CHANNELS
from maas_server.app import create_app
from maas_server.models.base import (
    FIND_SPEECH,
    SAMPLE_RATE,
    TRANSCRIBE,
    BatchMethod,
    Method,
    ModelDescription,
    SpeechChunk,
    SpeechSegment,
    Transcript,
)
from maas_server.settings import load_settings

URL = "/v1/audio/transcriptions"
MAX_AUDIO_BYTES = 1_000_000
MAX_AUDIO_SECONDS = 60


class HeardSeconds:
    """A speech model that says how many seconds of audio it was given, and nothing else."""

    task = "speech-recognition"

    def describe(self) -> ModelDescription:
        return ModelDescription(device="cpu", dtype="float32", languages=("en",), translates=False)

    def batch_methods(self) -> dict[Method[Any, Any], BatchMethod]:
        return {TRANSCRIBE: BatchMethod(prepare=lambda chunk: chunk, run=self.transcribe),
                FIND_SPEECH: BatchMethod(prepare=lambda samples: samples, run=self.find_speech)}

    def transcribe(self, chunks: list[SpeechChunk]) -> list[Transcript]:
        assert all(np.isfinite(c.samples).all() and c.samples.dtype == np.float32 for c in chunks)
        return [Transcript("en", [SpeechSegment(c.offset, c.offset + len(c.samples) / SAMPLE_RATE,
                                                f"{len(c.samples) / SAMPLE_RATE:.2f}")], 1) for c in chunks]

    def find_speech(self, items: list[Any]) -> list[list[tuple[int, int]]]:
        step = 30 * SAMPLE_RATE
        return [[(start, min(start + step, len(samples))) for start in range(0, len(samples), step)]
                for samples in items]

    def warmup(self) -> None:
        pass


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    tmp = tmp_path_factory.mktemp("audio")
    settings = load_settings({"data_dir": tmp / "data"}, file={
        "server": {"cache_dir": str(tmp / "cache"), "max_body_bytes": 2 * MAX_AUDIO_BYTES,
                   "max_audio_bytes": MAX_AUDIO_BYTES, "max_audio_seconds": MAX_AUDIO_SECONDS},
        "models": [{"name": "heard", "task": "speech-recognition", "source": "unused"}]})
    app = create_app(settings, loader=lambda model_config, server_config: HeardSeconds())
    assert app.extensions["maas"].registry.wait_until_loaded(10)
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def post(client: FlaskClient, data: bytes) -> Any:
    return client.post(URL, data={"file": (io.BytesIO(data), "clip"), "response_format": "text"},
                       content_type="multipart/form-data")


def tone(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    """A 440 Hz tone, a little different in each channel: (samples, channels) float32 in [-0.5, 0.5]."""
    t = np.arange(int(seconds * rate)) / rate
    return np.stack([0.5 * np.sin(2 * np.pi * (440 + 10 * c) * t) for c in range(channels)], axis=1).astype(np.float32)


def wav(seconds: float = 0.5, rate: int = 16_000, channels: int = 1) -> bytes:
    """16-bit PCM as Python's wave module writes it: no channel mask, so no channel has a known position."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((tone(seconds, rate, channels) * 32767).astype("<i2").tobytes())
    return out.getvalue()


def encoded(container: str, codec: str, rate: int, seconds: float = 0.5) -> bytes:
    """A mono tone encoded by PyAV (FFmpeg) in memory."""
    import av

    out = io.BytesIO()
    with av.open(out, "w", format=container) as target:
        stream = target.add_stream(codec, rate=rate, layout="mono")
        resampler = av.AudioResampler(format=stream.codec_context.format.name, layout="mono", rate=rate)
        frame = av.AudioFrame.from_ndarray(tone(seconds, rate).T.copy(), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = rate, 0
        for piece in [*resampler.resample(frame), *resampler.resample(None)]:
            target.mux(stream.encode(piece))
        target.mux(stream.encode(None))
    return out.getvalue()


# -- channels

@pytest.mark.parametrize("channels", [1, 2, 6, 8, 9, 13, 16, 24, 31, MAX_CHANNELS])
def test_every_channel_count_up_to_the_limit_is_heard(client: FlaskClient, channels: int) -> None:
    """FFmpeg downmixes only layouts it knows (1-8, 16, 24 channels without positions); any other count up to
    the documented 32 is mixed in equal parts."""
    response = post(client, wav(0.5, 16_000, channels))
    assert response.status_code == 200, response.json
    assert float(response.get_data(as_text=True)) == pytest.approx(0.5, abs=0.01)


def test_the_equal_mix_is_the_mean_of_the_channels() -> None:
    from maas_server.api.audio import AudioLimits, decode_audio

    rate, channels = 16_000, 9
    samples = tone(0.25, rate, channels)
    data = wav(0.25, rate, channels)
    mixed = decode_audio(data, AudioLimits(MAX_AUDIO_BYTES, MAX_AUDIO_SECONDS)).samples
    expected = (samples * 32767).astype("<i2").astype(np.float32).mean(axis=1) / 32768
    assert mixed == pytest.approx(expected, abs=2e-4)


def test_more_channels_than_the_limit_are_refused(client: FlaskClient) -> None:
    response = post(client, wav(0.1, 16_000, MAX_CHANNELS + 1))
    assert response.status_code == 400 and response.json["error"]["code"] == "unsupported_audio"
    assert f"1-{MAX_CHANNELS}" in response.json["error"]["message"]
