"""Synthesize the speech clips the tests transcribe (tests/data/speech), once, with Debian's espeak-ng.

    apt-get install -y espeak-ng && PYTHONPATH=. .venv/bin/python scripts/make_speech_clips.py

Writes `short.wav` (one sentence, 22.05 kHz, as espeak-ng speaks it) and `long.ogg` (sentences with
silences between them, over a minute, Opus), and `long.json`: each sentence's text and where it starts and
ends in the clip, so tests can check words and segment timestamps. The texts are our own; see README.md there.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import av
import numpy as np

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "speech"
RATE = 22050  # espeak-ng's own rate
SHORT = "The quick brown fox jumps over the lazy dog."
LONG = [
    "Good morning, and welcome to the weekly meeting.",
    "First, the garden behind the library will open in April.",
    "Volunteers should bring gloves, water and a hat.",
    "Second, the bus to the museum leaves at nine o'clock.",
    "Please be on time, because the driver cannot wait.",
    "Third, the kitchen needs new chairs and a bigger table.",
    "We will vote on the budget next Tuesday evening.",
    "The children painted pictures of boats and mountains.",
    "Their paintings will hang in the hall until summer.",
    "Finally, thank you to everyone who cleaned the river bank.",
    "We collected forty bags of rubbish in one afternoon.",
    "The library will also lend tools to anyone with a card.",
    "Ask at the front desk for a list of what is available.",
    "That is all for today. See you next week.",
]
GAPS_S = [0.8, 1.6, 2.4]  # silences of several lengths between sentences, cycled


def speak(text: str) -> np.ndarray:
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", tmp.name, text], check=True)
        with av.open(tmp.name) as container:
            frames = [frame.to_ndarray() for frame in container.decode(audio=0)]
    samples = np.concatenate(frames, axis=1)[0]
    return (samples.astype(np.float32) / 32768.0) if samples.dtype == np.int16 else samples.astype(np.float32)


def write(path: Path, samples: np.ndarray, codec: str, rate: int = RATE) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout="mono")
        if codec == "libopus":
            stream.bit_rate = 32_000
        fmt = "s16" if codec == "pcm_s16le" else stream.codec_context.format.name
        pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16) if fmt == "s16" else samples
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16" if fmt == "s16" else "flt",
                                           layout="mono")
        frame.sample_rate = RATE  # espeak-ng's samples, resampled to the stream's rate
        resampler = av.AudioResampler(format=fmt, layout="mono", rate=rate)
        for resampled in resampler.resample(frame) + resampler.resample(None):
            container.mux(stream.encode(resampled))
        container.mux(stream.encode(None))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    write(OUT / "short.wav", speak(SHORT), "pcm_s16le")
    parts, timeline, at = [np.zeros(int(0.5 * RATE), np.float32)], [], 0.5
    for i, sentence in enumerate(LONG):
        voice = speak(sentence)
        timeline.append({"text": sentence, "start": round(at, 2), "end": round(at + len(voice) / RATE, 2)})
        gap = np.zeros(int(GAPS_S[i % len(GAPS_S)] * RATE), np.float32)
        parts += [voice, gap]
        at += (len(voice) + len(gap)) / RATE
    write(OUT / "long.ogg", np.concatenate(parts), "libopus", rate=24000)  # Opus runs at 8-48 kHz; 24 kHz keeps speech
    (OUT / "long.json").write_text(json.dumps({"duration": round(at, 2), "sentences": timeline}, indent=1) + "\n")
    (OUT / "short.json").write_text(json.dumps({"text": SHORT}) + "\n")


if __name__ == "__main__":
    main()
