"""What text generation takes and gives: a request, its events and its result. Imports no torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .contract import Method

# Why a generated sequence ended: a stop condition (EOS or a stop string) or its token budget. The
# wire schemas use this same type, so a new reason must be added to the API on purpose.
FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token with its log-probability and the most likely alternatives."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()
    id: int | None = None  # its id in the model's vocabulary (TGI's shapes carry it)


@dataclass
class GenerationRequest:
    """One prompt (text, or chat messages) and its own sampling parameters."""

    prompt: str | None = None
    messages: list[dict[str, Any]] | None = None  # OpenAI chat messages: tool calls and results included
    tools: list[dict[str, Any]] | None = None  # OpenAI tool definitions the prompt offers the model
    tools_required: bool = False  # the model must call one (the wire layer also sets json_schema)
    max_tokens: int | None = None  # None: default_max_tokens, clipped to the context
    temperature: float = 1.0
    top_p: float = 1.0
    n: int = 1
    stop: tuple[str, ...] = ()
    seed: int | None = None
    logprobs: int | None = None  # None: no log-probabilities; k: chosen token plus k alternatives
    stream: bool = False  # emit TextDelta events as text becomes final (else only the result)
    # Structured output: a JSON schema (as JSON text) the generated text must follow. Each token is
    # chosen among those the schema allows at that point (constrained decoding).
    json_schema: str | None = None
    json_schema_field: str = "response_format"  # the request field it came from, named when it is refused


@dataclass(frozen=True)
class TextDelta:
    """Streamed progress of one generation: new final text of one choice, and the tokens behind it."""

    choice: int  # which of the request's n sequences
    text: str
    tokens: tuple[TokenLogprob, ...] = ()


@dataclass
class Choice:
    """The result for one sampled sequence."""

    text: str = ""
    finish_reason: FinishReason | None = None
    tokens: list[TokenLogprob] = field(default_factory=list)
    completion_tokens: int = 0
    stop_sequence: str | None = None  # the stop string that ended it ("stop" with None: end of sequence)


@dataclass
class GenerationResult:
    prompt_tokens: int
    choices: list[Choice]


GENERATE: Method[GenerationRequest, GenerationResult] = Method("generate")
