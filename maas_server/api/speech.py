"""POST /v1/audio/transcriptions and /v1/audio/translations: speech to text, in OpenAI's multipart shape.

The form carries the audio as its `file` part and the other fields as text. The audio is decoded and
checked (api/audio.py), audio longer than one chunk is cut in its silences (FIND_SPEECH), each chunk is
transcribed as one item (TRANSCRIBE, batched with other requests' chunks), and the pieces are put back
in order, timed from the start of the file. `response_format` picks the answer: `json` (the text),
`verbose_json` (segments, and words on request), or plain text as `text`, `srt` or `vtt`.

Hugging Face's shape for speech recognition (the audio file as the body) is in api/hf/inference.py.

Audio is personal data: these routes' bodies are never logged (their records say `personal_data`), nor
kept after the response.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from flask import Response, request
from pydantic import Field, ValidationError

from ..errors import APIError, validation_error
from ..models.speech_io import CHUNK_SECONDS, FIND_SPEECH, SAMPLE_RATE, TRANSCRIBE, SpeechChunk, SpeechTask, Transcript
from ..ops.memory import release_freed_memory
from ..runtime.registry import ModelEntry
from ._common import after_response, json_response, read_body, resolve_model, state, submit, wait_all
from .audio import AudioLimits, decode_audio
from .endpoints import Family
from .forms import audio_form
from .metering import report_usage
from .wire import RequestBody, ResponseBody, Usage

AudioFormat = Literal["json", "text", "srt", "verbose_json", "vtt"]


class TranscriptionRequest(RequestBody):
    """The multipart form's fields besides `file` (form values are text: "0.2" is the number 0.2 here).

    OpenAI's `stream` is accepted at false only; `chunking_strategy` is accepted and knowingly ignored (long
    audio is always cut in its silences, by a voice activity detector); `include[]` may be empty only.
    """

    model: str | None = None
    language: str | None = Field(None, min_length=2, max_length=3, pattern=r"^[a-z]{2,3}$",
                                 description="ISO 639-1 code of the spoken language (default: detected; "
                                             "an English-only model hears English)")
    prompt: str | None = Field(None, max_length=1000,
                               description="text that sets the style or spells names (Whisper's initial prompt)")
    temperature: float = Field(0.0, ge=0, le=1, description="0: beam search (5 beams); above 0: sampling")
    response_format: AudioFormat = "json"
    timestamp_granularities: list[Literal["segment", "word"]] = Field(
        ["segment"], description="verbose_json: `word` adds `words`, each timed")
    stream: Literal[False] = False
    chunking_strategy: str | None = None
    include: list[Literal[""]] = []  # noqa: RUF012 - pydantic copies a default per instance


class TranslationRequest(RequestBody):
    """The fields of /v1/audio/translations (OpenAI's: no language, no timestamp granularities)."""

    model: str | None = None
    prompt: str | None = Field(None, max_length=1000)
    temperature: float = Field(0.0, ge=0, le=1)
    response_format: AudioFormat = "json"


class DurationUsage(ResponseBody):
    """What a transcription used, as OpenAI reports it for whisper: seconds of audio."""

    type: Literal["duration"] = "duration"
    seconds: float


class TranscriptionWord(ResponseBody):
    word: str
    start: float
    end: float


class TranscriptionSegment(ResponseBody):
    id: int
    seek: int = Field(description="where the segment's chunk starts, in 10 ms frames")
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float


class Transcription(ResponseBody):
    """response_format json."""

    text: str
    usage: DurationUsage


class TranscriptionVerbose(ResponseBody):
    """response_format verbose_json: the text, its language (ISO 639-1 code), the audio's duration in
    seconds, its segments and, with timestamp_granularities word, its words."""

    task: Literal["transcribe", "translate"]
    language: str
    duration: float
    text: str
    segments: list[TranscriptionSegment]
    words: list[TranscriptionWord] | None = None
    usage: DurationUsage


family = Family("speech", __name__)

_TRANSCRIPTION_FORM = audio_form(
    {"language": {"type": "string", "pattern": "^[a-z]{2,3}$"},
     "timestamp_granularities[]": {"type": "array", "items": {"enum": ["segment", "word"]}},
     "stream": {"type": "boolean", "const": False}, "chunking_strategy": {"type": "string"}},
    "`model`, `language`, `prompt`, `temperature`, `response_format`, `timestamp_granularities[]`")
_TRANSLATION_FORM = audio_form({}, "`model`, `prompt`, `temperature`, `response_format`")
LIST_FIELDS = ("timestamp_granularities", "include")  # OpenAI's clients send these as `name[]`, once per value
RELEASE_AFTER_SECONDS = 60  # a minute of samples is 3.8 MB: hand larger decodes' memory back after the response


@family.post("/v1/audio/transcriptions", "Speech to text (OpenAI shape): multipart audio; long audio is cut in its "
               "silences", request=TranscriptionRequest, response=TranscriptionVerbose,
               multipart=_TRANSCRIPTION_FORM,
               text="the transcript (`text`), or subtitles (`srt`, `vtt`)", multipart_only=True,
               alternatives=(Transcription,), serves=(TRANSCRIBE,), personal_data=True)
def transcriptions() -> Any:
    return _speech("transcribe", TranscriptionRequest)


@family.post("/v1/audio/translations", "Speech in any language to English text (OpenAI shape); a model that "
               "cannot translate answers 400 `translation_unsupported`", request=TranslationRequest,
               response=TranscriptionVerbose, multipart=_TRANSLATION_FORM,
               text="the translation (`text`), or subtitles (`srt`, `vtt`)", multipart_only=True,
               alternatives=(Transcription,), serves=(TRANSCRIBE,), personal_data=True,
               offered=lambda described: described.translates is not False)  # a multilingual model's
def translations() -> Any:
    return _speech("translate", TranslationRequest)


def _speech(task: SpeechTask, schema: type[TranscriptionRequest] | type[TranslationRequest]) -> Any:
    body, data = _read_form(schema)
    entry = resolve_model(body.model)
    language = getattr(body, "language", None)
    words = "word" in getattr(body, "timestamp_granularities", ())
    transcripts, seconds = transcribe(entry, data, task, language, body.prompt, body.temperature, words)
    del data
    usage = DurationUsage(seconds=round(seconds, 2))
    return _answer(body.response_format, task, transcripts, seconds, usage, language, words)


# A transcription's working memory over the worker's idle RSS: measured peaks of 660-890 MB for 10 and
# 30 minutes of speech (the decoded samples, their copies, the model's features and chunks).
AUDIO_CALL_BYTES = 256 << 20
AUDIO_BYTES_PER_SECOND = 192 << 10


def _reserve_memory(seconds: float) -> None:
    state().memory.reserve(AUDIO_CALL_BYTES + int(AUDIO_BYTES_PER_SECOND * seconds),
                           f"{seconds:.0f} s of audio", param="file")


def transcribe(entry: ModelEntry, data: bytes, task: SpeechTask, language: str | None, prompt: str | None,
                temperature: float, words: bool) -> tuple[list[Transcript], float]:
    """Decode, cut where needed, transcribe each chunk and report usage: the chunks' transcripts, in order."""
    _check_model_can(entry.description, task, language)
    config = state().config
    limits = AudioLimits(config.max_audio_bytes, config.max_audio_seconds, config.max_audio_samples)
    audio = decode_audio(data, limits, admit=_reserve_memory)
    del data
    if audio.seconds >= RELEASE_AFTER_SECONDS:
        after_response(release_freed_memory)
    samples = audio.samples
    ranges = [(0, len(samples))] if audio.seconds <= CHUNK_SECONDS else \
        wait_all(submit(entry, FIND_SPEECH, [samples]))[0]
    chunks = [SpeechChunk(samples[start:end], start / SAMPLE_RATE, task, language, prompt, temperature, words)
              for start, end in ranges]
    transcripts = wait_all(submit(entry, TRANSCRIBE, chunks)) if chunks else []
    tokens = sum(t.tokens for t in transcripts)
    # Accounting counts tokens: a second of audio heard is one prompt token, each generated token one more.
    report_usage(entry.config.name, Usage(prompt_tokens=math.ceil(audio.seconds), completion_tokens=tokens,
                                            total_tokens=math.ceil(audio.seconds) + tokens))
    return transcripts, audio.seconds


def _read_form(schema: type[TranscriptionRequest] | type[TranslationRequest]
               ) -> tuple[TranscriptionRequest | TranslationRequest, bytes]:
    if request.mimetype != "multipart/form-data":
        raise APIError("send the audio as multipart/form-data, in a part named `file`, as OpenAI's API takes it",
                       code="invalid_content_type")
    read_body()  # 413 over max_body_bytes, 400 when cut short; the form is then parsed from those bytes
    files = request.files.getlist("file")
    if len(files) != 1 or set(request.files) - {"file"}:
        raise APIError("send exactly one audio file, in a part named `file`", param="file", code="invalid_value")
    fields: dict[str, Any] = {}
    for key in request.form:
        name = key.removesuffix("[]")
        fields[name] = request.form.getlist(key) if name in LIST_FIELDS else request.form[key]
    unknown = sorted(set(fields) - set(schema.model_fields))
    if unknown:
        raise APIError(f"unknown form field(s): {', '.join(unknown)}", status=400, param=unknown[0],
                       code="invalid_value")
    if fields.get("stream") in ("false", "False"):
        fields["stream"] = False
    try:
        body = schema.model_validate(fields, strict=False)
    except ValidationError as exc:
        raise validation_error(exc) from None
    # Read one byte past the limit, so that an oversized file is told apart without reading all of it.
    return body, files[0].read(state().config.max_audio_bytes + 1)


def _check_model_can(described: Any, task: SpeechTask, language: str | None) -> None:
    if described is None:
        return
    if task == "translate" and described.translates is False:
        raise APIError("this model is English-only and cannot translate; use /v1/audio/transcriptions, or a "
                       "multilingual Whisper model", param="model", code="translation_unsupported")
    known = described.languages or ()
    if language is not None and known and language not in known:
        hint = "it is English-only" if tuple(known) == ("en",) else f"it knows {', '.join(known)}"
        raise APIError(f"this model does not transcribe language {language!r}: {hint}; send another language, "
                       f"or none to detect it", param="language", code="unsupported_language")


def _answer(response_format: AudioFormat, task: SpeechTask, transcripts: list[Transcript], seconds: float,
            usage: DurationUsage, language: str | None, words: bool) -> Any:
    segments = [segment for t in transcripts for segment in t.segments]
    text = "".join(segment.text for segment in segments).strip()
    if response_format == "json":
        return json_response(Transcription(text=text, usage=usage))
    if response_format == "text":
        return Response(text + "\n", mimetype="text/plain")
    if response_format in ("srt", "vtt"):
        return Response(_subtitles(segments, response_format), mimetype="text/plain")
    detected = language or next((t.language for t in transcripts), "en")
    out = [TranscriptionSegment(id=i, seek=round(segment.start * 100), start=segment.start, end=segment.end,
                                  text=segment.text, tokens=list(segment.tokens), temperature=0.0,
                                  avg_logprob=segment.avg_logprob, compression_ratio=segment.compression_ratio,
                                  no_speech_prob=segment.no_speech_prob)
           for i, segment in enumerate(segments)]
    word_list = [TranscriptionWord(word=w.word.strip(), start=w.start, end=w.end)
                 for segment in segments for w in segment.words] if words else None
    return json_response(TranscriptionVerbose(task=task, language=detected, duration=round(seconds, 2), text=text,
                                                segments=out, words=word_list, usage=usage))


def _subtitles(segments: list[Any], kind: str) -> str:
    """SubRip (`srt`) or WebVTT (`vtt`) cues, one per segment."""
    comma = "," if kind == "srt" else "."
    cues = []
    for i, segment in enumerate(segments, 1):
        timing = f"{_clock(segment.start, comma)} --> {_clock(segment.end, comma)}"
        number = f"{i}\n" if kind == "srt" else ""
        cues.append(f"{number}{timing}\n{segment.text.strip()}\n")
    return ("WEBVTT\n\n" if kind == "vtt" else "") + "\n".join(cues)


def _clock(seconds: float, comma: str) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}{comma}{ms % 1000:03d}"
