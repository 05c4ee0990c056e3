"""The committed speech clips (tests/data/speech, made by scripts/make_speech_clips.py), what they say, and how
close a transcript is to it (word error rate)."""

from __future__ import annotations

import io
import json
import re
import wave
from pathlib import Path

DATA = Path(__file__).parent / "data" / "speech"
SHORT = DATA / "short.wav"  # "The quick brown fox jumps over the lazy dog." (3.3 s, 16 kHz, flite's slt voice)
SHORT_SCRIPT = json.loads((DATA / "short.json").read_text())
LONG = DATA / "long.ogg"  # 14 sentences in four voices with pauses, 73 s, Opus: needs cutting into chunks
LONG_SCRIPT = json.loads((DATA / "long.json").read_text())
# The clip set word error rate is measured on: 8 clips of four sentences, two per voice (FLAC, 16 kHz).
CLIP_SET = [(DATA / clip["file"], clip["text"]) for clip in json.loads((DATA / "set.json").read_text())["clips"]]

# Word error rates the served Whisper tiny.en must stay under (measured through the server, docs/performance.md):
# - the clip set: 0.033-0.042 on AVX-512 and on the AVX2 paths (`make test-avx2`), as committed and with noise
#   at -70 dB added to every clip; a model with random weights scores about 1;
# - the long clip (pauses of 0.8-2.4 s, four voices, cut into chunks): 0.076-0.098 the same ways;
# - the short clip (nine words, so up to three may be wrong): 0 the same ways.
MAX_SET_WER = 0.15
MAX_LONG_WER = 0.25
MAX_SHORT_WER = 0.34


def words(text: str) -> list[str]:
    """Lower-case words without punctuation; a hyphen separates words ("round-trip" is two)."""
    return re.findall(r"[a-z']+", text.lower())


def word_error_rate(references: list[str], transcripts: list[str]) -> float:
    """Word errors (substitutions, deletions, insertions) over the reference's words, pooled over all pairs."""
    import jiwer

    return float(jiwer.wer([" ".join(words(r)) for r in references], [" ".join(words(t)) for t in transcripts]))


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
