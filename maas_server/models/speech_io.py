"""What speech recognition takes and gives. Imports no torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from .contract import Method

SAMPLE_RATE = 16_000  # what Whisper listens at


CHUNK_SECONDS = 30.0  # Whisper hears 30 s at a time: longer audio is cut into chunks no longer than this


SpeechTask = Literal["transcribe", "translate"]


@dataclass(frozen=True)
class SpeechChunk:
    """Up to CHUNK_SECONDS of audio to transcribe (or translate into English), and how.

    `offset` is where the chunk starts in the whole audio, in seconds: timestamps come back in the whole
    audio's time. `language` None: the model detects it (an English-only model assumes English).
    """

    samples: Any  # 1-D float32 numpy array, mono, SAMPLE_RATE
    offset: float = 0.0
    task: SpeechTask = "transcribe"
    language: str | None = None
    prompt: str | None = None
    temperature: float = 0.0
    words: bool = False  # also time each word


@dataclass(frozen=True)
class SpeechWord:
    word: str
    start: float
    end: float
    probability: float


@dataclass(frozen=True)
class SpeechSegment:
    """A stretch of speech the model timed itself: seconds from the start of the whole audio."""

    start: float
    end: float
    text: str
    tokens: tuple[int, ...] = ()
    avg_logprob: float = 0.0
    compression_ratio: float = 0.0
    no_speech_prob: float = 0.0
    words: tuple[SpeechWord, ...] = ()


@dataclass(frozen=True)
class Transcript:
    """What one chunk said: its language (ISO 639-1), its segments, and the tokens generated (for `usage`)."""

    language: str
    segments: list[SpeechSegment]
    tokens: int


# Speech: where to cut long audio (sample ranges, each at most CHUNK_SECONDS, cut in silences), then each chunk's words.
FIND_SPEECH: Method[Any, list[tuple[int, int]]] = Method("find-speech")


TRANSCRIBE: Method[SpeechChunk, Transcript] = Method("transcribe")
