"""The committed speech clips (tests/data/speech, made by scripts/make_speech_clips.py) and what they say."""

from __future__ import annotations

import io
import json
import re
import wave
from pathlib import Path

DATA = Path(__file__).parent / "data" / "speech"
SHORT = DATA / "short.wav"  # "The quick brown fox jumps over the lazy dog." (2.9 s, 22.05 kHz)
LONG = DATA / "long.ogg"  # 14 sentences with pauses, 65 s, Opus: needs cutting into chunks
LONG_SCRIPT = json.loads((DATA / "long.json").read_text())
# One word per sentence of the long clip that Whisper tiny.en gets right, checked against each sentence's segment.
LONG_KEYWORDS = ["welcome", "garden", "gloves", "museum", "driver", "kitchen", "budget", "children", "paintings",
                 "river", "rubbish", "card", "desk", "week"]
SHORT_WORDS = ["quick", "brown", "fox", "over", "lazy"]


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def transcode(path: Path, container: str, codec: str, rate: int | None = None) -> bytes:
    """The clip re-encoded with PyAV (FFmpeg) into another container and codec, in memory."""
    import av

    out = io.BytesIO()
    with av.open(str(path)) as source, av.open(out, "w", format=container) as target:
        stream = target.add_stream(codec, rate=rate or source.streams.audio[0].sample_rate, layout="mono")
        resampler = av.AudioResampler(format=stream.codec_context.format.name, layout="mono", rate=stream.rate)
        for frame in source.decode(audio=0):
            for resampled in resampler.resample(frame):
                target.mux(stream.encode(resampled))
        for resampled in resampler.resample(None):
            target.mux(stream.encode(resampled))
        target.mux(stream.encode(None))
    return out.getvalue()


def silent_wav(seconds: float, rate: int = 16_000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * int(seconds * rate))
    return out.getvalue()


def silent_flac(seconds: float, rate: int = 8_000) -> bytes:
    """Silence compresses to almost nothing in FLAC: a small file that decodes to a long stretch of audio."""
    import av
    import numpy as np

    out = io.BytesIO()
    with av.open(out, "w", format="flac") as target:
        stream = target.add_stream("flac", rate=rate, layout="mono")
        block = av.AudioFrame.from_ndarray(np.zeros((1, rate), np.int16), format="s16", layout="mono")
        block.sample_rate = rate
        for second in range(int(seconds)):
            block.pts = second * rate
            target.mux(stream.encode(block))
        target.mux(stream.encode(None))
    return out.getvalue()
