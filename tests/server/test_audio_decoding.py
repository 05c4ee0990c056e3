"""Decoding and checking uploaded audio (api/audio.py) through the transcription route, with a fake speech model
that answers at once: what the route does with odd, damaged and hostile files, without running Whisper.

The fuzz test mutates small valid clips (WAV in 16-bit, float and 9 channels, FLAC, Ogg/Opus and MP3, made here
with PyAV, and the committed speech clip) from a fixed seed, through the route: a failure names its case, and
replays with `case_bytes(clip, index)`."""

from __future__ import annotations

import io
import random
import struct
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient

from maas_server.api.audio import MAX_CHANNELS
from maas_server.app import create_app
from maas_server.models.contract import BatchMethod, Method, ModelDescription
from maas_server.models.speech_io import FIND_SPEECH, SAMPLE_RATE, TRANSCRIBE, SpeechChunk, SpeechSegment, Transcript
from maas_server.settings import load_settings

URL = "/v1/audio/transcriptions"
MAX_AUDIO_BYTES = 1_000_000
MAX_AUDIO_SECONDS = 60


class HeardSeconds:
    """A speech model that says how many seconds of audio it was given, and nothing else. It fails (a 500) on
    samples that are not finite float32: Whisper hears nothing in NaN (CTranslate2 writes `)))...`)."""

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


# -- fuzz

SEED = 20_240_611
CASES_PER_CLIP = 100

CLIPS: dict[str, Callable[[], bytes]] = {
    "wav": lambda: wav(0.5, 16_000),
    "wav-stereo-44k": lambda: wav(0.3, 44_100, 2),
    "wav-9-channels": lambda: wav(0.2, 8_000, 9),  # mixed by maas, not FFmpeg
    "flac": lambda: encoded("flac", "flac", 16_000),
    "ogg-opus": lambda: encoded("ogg", "libopus", 48_000),
    "mp3": lambda: encoded("mp3", "libmp3lame", 44_100),
    "wav-float": lambda: encoded("wav", "pcm_f32le", 16_000),  # what maas_client sends for a numpy array
    "speech-wav": lambda: (Path(__file__).parent.parent / "data" / "speech" / "short.wav").read_bytes(),
}
_made: dict[str, bytes] = {}


def clip(name: str) -> bytes:
    if name not in _made:
        _made[name] = CLIPS[name]()
    return _made[name]


def _size_field(data: bytearray, rng: random.Random) -> None:
    """A 32-bit length where headers keep theirs (RIFF, fmt, data; FLAC and Ogg near the start) set to an
    extreme, or a 4-byte aligned word of the header region otherwise."""
    at = rng.choice([4, 16, 24, 28, 40, 8 + 4 * rng.randrange(16)])
    if at + 4 <= len(data):
        data[at:at + 4] = struct.pack("<I", rng.choice([0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, len(data) * 4]))


def _short_field(data: bytearray, rng: random.Random) -> None:
    """A 16-bit field of a WAV's fmt chunk (format tag, channels, block align, bits per sample) set to an odd
    value; elsewhere, the same bytes of any header."""
    at = rng.choice([20, 22, 32, 34])
    if at + 2 <= len(data):
        data[at:at + 2] = struct.pack("<H", rng.choice([0, 1, 3, 7, 0xFFFE, 0xFFFF, 0x1010, rng.randrange(1 << 16)]))


def _mutate(data: bytearray, rng: random.Random) -> bytearray:
    kind = rng.randrange(10)
    header = min(len(data), 128)
    if kind == 0:  # flip bits in the header
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(header)] ^= 1 << rng.randrange(8)
    elif kind == 1:  # overwrite header bytes with 0x00, 0xFF or noise
        at = rng.randrange(header)
        data[at:at + rng.randint(1, 8)] = bytes([rng.choice([0, 0xFF, rng.randrange(256)])]) * rng.randint(1, 8)
    elif kind == 2:
        _size_field(data, rng)
    elif kind == 9:
        _short_field(data, rng)
    elif kind == 3:  # flip bytes anywhere
        for _ in range(rng.randint(1, 16)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == 4:  # truncate
        del data[rng.randrange(1, len(data)):]
    elif kind == 5:  # duplicate a chunk in place
        start = rng.randrange(len(data))
        piece = data[start:start + rng.randint(1, 4096)]
        data[start:start] = piece * rng.randint(1, 3)
    elif kind == 6:  # cut a chunk out
        start = rng.randrange(len(data))
        del data[start:start + rng.randint(1, 2048)]
    elif kind == 7:  # insert noise
        at = rng.randrange(len(data))
        data[at:at] = rng.randbytes(rng.randint(1, 256))
    else:  # the header of one clip before the body of another
        other = bytearray(clip(rng.choice(sorted(CLIPS))))
        data[:] = data[:rng.randrange(1, header + 1)] + other[rng.randrange(len(other)):]
    return data


def case_bytes(name: str, index: int) -> bytes:
    """Case `index` of clip `name`: one to three mutations of the clip, drawn from the fixed seed."""
    rng = random.Random(f"{SEED}:{name}:{index}")
    data = bytearray(clip(name))
    for _ in range(rng.choice([1, 1, 2, 3])):
        if data:
            data = _mutate(data, rng)
    return bytes(data)


@pytest.mark.parametrize("name", sorted(CLIPS))
def test_mutated_audio_gets_a_200_or_a_clear_4xx_never_a_5xx(client: FlaskClient, name: str) -> None:
    """100 files per clip, 800 in all: every answer is a 200 or a 4xx in the JSON error envelope naming `file`."""
    assert post(client, clip(name)).status_code == 200
    failures, statuses = [], set()
    for index in range(CASES_PER_CLIP):
        response = post(client, case_bytes(name, index))
        statuses.add(response.status_code)
        if response.status_code == 200:
            continue
        error = (response.json or {}).get("error", {})
        if not (400 <= response.status_code < 500 and error.get("param") == "file" and error.get("code")
                and error.get("message")):
            failures.append((index, response.status_code, response.get_data(as_text=True)[:300]))
    assert not failures, f"case_bytes({name!r}, index) answered: {failures}"
    assert statuses - {200}, "no mutation was refused: the mutations are too gentle to test anything"


# -- the cost of decoding, and memory

def test_samples_to_decode_are_bounded_from_the_header_and_while_decoding() -> None:
    """Decoding costs channels x rate x seconds (30 minutes of 8 channels at 384 kHz: 42 CPU-s): refused
    from the header when it declares too many, and cut off at the limit when it lies or declares none."""
    from maas_server.api.audio import AudioLimits, decode_audio
    from maas_server.errors import APIError

    many = wav(seconds=0.5, rate=96_000, channels=8)  # 384,000 samples to decode
    limits = AudioLimits(MAX_AUDIO_BYTES, MAX_AUDIO_SECONDS, max_samples=200_000)
    with pytest.raises(APIError) as refused:
        decode_audio(many, limits)
    assert (refused.value.status, refused.value.code) == (413, "audio_too_large")
    assert "max_audio_samples" in refused.value.message and "more than" not in refused.value.message
    streaming = bytearray(many)  # a WAV written before its length was known: no duration in the header
    at = streaming.index(b"data")
    streaming[at + 4:at + 8] = struct.pack("<I", 0xFFFFFFFF)
    streaming[4:8] = struct.pack("<I", 0xFFFFFFFF)
    with pytest.raises(APIError) as cut:
        decode_audio(bytes(streaming), limits)
    assert cut.value.code == "audio_too_large", cut.value.message
    assert len(decode_audio(many, AudioLimits(MAX_AUDIO_BYTES, MAX_AUDIO_SECONDS, max_samples=400_000)).samples)


def test_a_transcription_reserves_memory_for_its_declared_length(app: Flask, client: FlaskClient,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from maas_server.api.memory import MB, MemoryBudget

    budget = MemoryBudget(260 * MB)  # room for a short clip (256 MB + 192 kB a second), not for 45 s
    monkeypatch.setattr(app.extensions["maas"], "memory", budget)
    seen: list[int] = []
    reserve = budget.reserve
    monkeypatch.setattr(budget, "reserve", lambda n, what, param=None: (seen.append(n), reserve(n, what, param)))
    assert post(client, wav(seconds=1.0)).status_code == 200
    assert seen and 256 * MB < seen[0] < 257 * MB and budget.held == 0
    refused = post(client, wav(seconds=45.0, rate=8_000))
    assert refused.status_code == 413 and "memory_budget_mb" in refused.get_json()["error"]["message"]
    assert budget.held == 0
