"""Synthesize the speech clips the tests transcribe (tests/data/speech), once, with Debian's flite and espeak-ng.

    apt-get install -y flite espeak-ng && PYTHONPATH=. .venv/bin/python scripts/make_speech_clips.py

Writes, at 16 kHz mono (Whisper's own rate, so no resampling stands between the file and the model):

- ``short.wav``: one sentence in flite's ``slt`` voice, for the tests of answer formats;
- ``long.ogg``: fourteen sentences in four voices with silences between them, over a minute, Opus; ``long.json``
  holds each sentence's text and where it starts and ends, as the script placed it;
- ``set/*.flac`` and ``set.json``: the clip set that word error rate is measured on, four sentences per clip, one
  voice per clip (lossless, so every machine decodes the same samples).

Three of the voices are flite's (``slt``, ``rms``, ``awb``: clear diphone and cluster-unit voices) and one is
espeak-ng's formant voice ``en-us``, which is harder to hear; all are spoken 10-15 % slower than their default.
The texts are our own and avoid numbers, whose spelling (nine, 9) no transcript can be marked wrong for.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import av
import numpy as np

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "speech"
RATE = 16_000
VOICES = ("slt", "rms", "awb", "espeak")  # cycled over the long clip's sentences and the set's clips
SHORT = "The quick brown fox jumps over the lazy dog."
LONG = [
    "Good morning, and welcome to the weekly meeting.",
    "First, the garden behind the library will open in April.",
    "Volunteers should bring gloves, water and a hat.",
    "Second, the bus to the museum leaves early on Saturday.",
    "Please be on time, because the driver cannot wait.",
    "Third, the kitchen needs new chairs and a bigger table.",
    "We will vote on the budget next Tuesday evening.",
    "The children painted pictures of boats and mountains.",
    "Their paintings will hang in the hall until summer.",
    "Finally, thank you to everyone who cleaned the river bank.",
    "We collected many bags of rubbish in one afternoon.",
    "The library will also lend tools to anyone with a card.",
    "Ask at the front desk for a list of what is available.",
    "That is all for today. See you next week.",
]
SET = [
    ["The river was calm, so we took the small boat out before lunch.",
     "Please close the window when you leave the office tonight.",
     "My sister bought fresh bread and cheese at the market.",
     "The train to the city was late again this morning."],
    ["He planted tomatoes and beans in the garden behind the house.",
     "We watched the birds fly south over the green hills.",
     "Turn left at the bank, then walk straight to the old church.",
     "The teacher read a story about a brave little mouse."],
    ["Our neighbors painted their front door bright yellow.",
     "Remember to water the plants while we are away.",
     "The doctor said that a short walk every day is good for you.",
     "They sang songs around the fire until it grew dark."],
    ["The museum opens at noon and closes in the early evening.",
     "She wrote a long letter to her grandmother in the country.",
     "The children built a castle of sand on the beach.",
     "Bring a warm coat, because the wind is cold by the lake."],
    ["The baker sells apple pie and warm rolls every morning.",
     "A black cat sat on the wall and watched the street below.",
     "We need more paper for the printer in the hall.",
     "The football match was stopped because of heavy rain."],
    ["My brother fixed the old bicycle with a new chain.",
     "The library has a quiet room for reading and study.",
     "Wash the vegetables before you cut them for the soup.",
     "The pilot told us that the flight would be smooth."],
    ["A gentle wind moved the leaves of the tall trees.",
     "The shop on the corner sells newspapers and sweets.",
     "He forgot his keys and had to wait outside in the cold.",
     "The farmer drove his tractor across the wet field."],
    ["We listened to music on the radio during the long drive.",
     "The nurse checked the patient and wrote down the results.",
     "Our team finished the project a week before the deadline.",
     "The moon was bright, and the sky was full of stars."],
]
PAUSE_S = 0.6  # between the sentences of one clip of the set
GAPS_S = [0.8, 1.6, 2.4]  # silences of several lengths between the long clip's sentences, cycled


def speak(text: str, voice: str) -> np.ndarray:
    """The sentence as float32 samples at RATE, in one of VOICES."""
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        if voice == "espeak":
            subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", tmp.name, text], check=True)
        else:
            subprocess.run(["flite", "-voice", voice, "--setf", "duration_stretch=1.1", "-t", text, "-o", tmp.name],
                           check=True)
        with av.open(tmp.name) as container:
            resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
            frames = [out.to_ndarray() for frame in container.decode(audio=0) for out in resampler.resample(frame)]
            frames += [out.to_ndarray() for out in resampler.resample(None)]
    return np.concatenate(frames, axis=1)[0].astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), np.float32)


def write(path: Path, samples: np.ndarray, container: str, codec: str) -> None:
    with av.open(str(path), "w", format=container) as target:
        rate = 24_000 if codec == "libopus" else RATE  # Opus runs at 8-48 kHz, not 16 kHz
        stream = target.add_stream(codec, rate=rate, layout="mono")
        if codec == "libopus":
            stream.bit_rate = 32_000
        pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        resampler = av.AudioResampler(format=stream.codec_context.format.name, layout="mono", rate=rate)
        for resampled in resampler.resample(frame) + resampler.resample(None):
            target.mux(stream.encode(resampled))
        target.mux(stream.encode(None))


def make_long() -> dict[str, object]:
    parts, timeline, at = [silence(0.5)], [], 0.5
    for i, sentence in enumerate(LONG):
        voice = speak(sentence, VOICES[i % len(VOICES)])
        timeline.append({"text": sentence, "voice": VOICES[i % len(VOICES)], "start": round(at, 2),
                         "end": round(at + len(voice) / RATE, 2)})
        gap = silence(GAPS_S[i % len(GAPS_S)])
        parts += [voice, gap]
        at += (len(voice) + len(gap)) / RATE
    write(OUT / "long.ogg", np.concatenate(parts), "ogg", "libopus")
    return {"duration": round(at, 2), "sentences": timeline}


def make_set() -> list[dict[str, object]]:
    (OUT / "set").mkdir(exist_ok=True)
    clips = []
    for i, sentences in enumerate(SET):
        voice = VOICES[i % len(VOICES)]
        parts = [silence(0.3)]
        for sentence in sentences:
            parts += [speak(sentence, voice), silence(PAUSE_S)]
        samples = np.concatenate(parts)
        name = f"set/{i + 1:02d}-{voice}.flac"
        write(OUT / name, samples, "flac", "flac")
        clips.append({"file": name, "voice": voice, "text": " ".join(sentences),
                      "duration": round(len(samples) / RATE, 2)})
    return clips


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    short = speak(SHORT, "slt")
    write(OUT / "short.wav", short, "wav", "pcm_s16le")
    (OUT / "short.json").write_text(json.dumps({"text": SHORT, "duration": round(len(short) / RATE, 2)}) + "\n")
    (OUT / "long.json").write_text(json.dumps(make_long(), indent=1) + "\n")
    (OUT / "set.json").write_text(json.dumps({"clips": make_set()}, indent=1) + "\n")


if __name__ == "__main__":
    main()
