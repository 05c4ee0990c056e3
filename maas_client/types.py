"""Pydantic models for every request the client sends and every response it reads.

Responses allow unknown fields (``extra="allow"``): a newer server, or another
OpenAI-compatible one, may add fields, and they stay readable as attributes instead of
breaking the client. Metadata fields have defaults for the same reason; the data a result
exists for (``choices``, ``data``) is required.
"""

from __future__ import annotations

import array
import base64
import builtins
import html
import json
import math
import sys
import zlib
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

__all__ = [
    "Box",
    "ChatChoice",
    "ChatChoiceLogprobs",
    "ChatChunkChoice",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "ChatDelta",
    "ChatMessage",
    "ChatTokenLogprob",
    "Classification",
    "ClassificationItem",
    "Completion",
    "CompletionChoice",
    "CompletionChunk",
    "CompletionLogprobs",
    "CompletionRequest",
    "ContentPart",
    "DetectedObject",
    "DetectionRequest",
    "Embedding",
    "EmbeddingRequest",
    "Embeddings",
    "Entities",
    "Entity",
    "EntityRequest",
    "EntityResult",
    "Explanation",
    "Face",
    "FaceComparison",
    "FaceDetectionItem",
    "FaceDetections",
    "FunctionCall",
    "FunctionDefinition",
    "ImageClassificationRequest",
    "LabelScore",
    "ModelInfo",
    "ModelList",
    "ObjectDetectionItem",
    "ObjectDetections",
    "Point",
    "ResponseContent",
    "ResponseEvent",
    "ResponseObject",
    "ResponseOutputItem",
    "ResponsesRequest",
    "ResponseUsage",
    "StreamSummary",
    "TextClassificationRequest",
    "TokenWeight",
    "Tool",
    "ToolCall",
    "TopLogprob",
    "Transcription",
    "TranscriptionSegment",
    "TranscriptionWord",
    "Usage",
    "UsageReport",
    "UsageRow",
]


class _Response(BaseModel):
    # defer_build: each model's validator is built when it is first used, not at import (which
    # would cost ~2 ms per model, 70 ms for them all, in every program that imports the client).
    model_config = ConfigDict(extra="allow", defer_build=True)
    _request_id: str | None = PrivateAttr(default=None)

    @property
    def request_id(self) -> str | None:
        """The ``X-Request-ID`` of the call that returned this result (quote it when reporting a problem)."""
        return self._request_id

    def _stamp(self, request_id: str | None) -> None:
        self._request_id = request_id


class _Request(BaseModel):
    # A typo in a field name is a bug in this package, not something to send silently.
    model_config = ConfigDict(extra="forbid", defer_build=True)

    def to_body(self) -> dict[str, Any]:
        """The JSON body: unset options are left out so the server's defaults apply."""
        return self.model_dump(mode="json", exclude_none=True)


# ---------------------------------------------------------------------------- shared


class Usage(_Response):
    """Token counts of one call."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ContentPart(_Response):
    """One part of a chat message's content, e.g. ``{"type": "text", "text": "Hi"}``."""

    type: str
    text: str | None = None


class FunctionCall(_Response):
    """The function a tool call names and its arguments, as JSON text (as OpenAI gives them)."""

    name: str
    arguments: str = "{}"


class ToolCall(_Response):
    """A call the model asks for: ``function.name`` with ``arguments`` (decoded from ``function.arguments``).

    Answer it with a ``{"role": "tool", "tool_call_id": call.id, "content": ...}`` message.
    ``index`` is set in stream deltas only.
    """

    id: str
    type: str = "function"
    function: FunctionCall
    index: int | None = None

    @property
    def arguments(self) -> Any:
        """``function.arguments`` decoded from JSON (a dict for every function the server constrains)."""
        return json.loads(self.function.arguments)


class ChatMessage(_Response):
    """A chat message: ``role`` is ``system``, ``developer``, ``user``, ``assistant`` or ``tool``.

    An assistant message may carry ``tool_calls`` instead of content; a ``tool`` message answers
    the call named by ``tool_call_id``.
    """

    role: str
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class FunctionDefinition(_Response):
    """A function the model may call: ``parameters`` is a JSON schema of its arguments."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Response):
    """A tool offered to :meth:`Client.chat` (``tools=[...]``); OpenAI's shape, so plain dicts work too.

    ``Tool.define("get_weather", Weather)`` takes the parameters as a pydantic model class
    (its JSON schema) or a JSON schema dict.
    """

    type: str = "function"
    function: FunctionDefinition

    @classmethod
    def define(
        cls, name: str, parameters: builtins.type[BaseModel] | dict[str, Any] | None = None,
        description: str | None = None,
    ) -> Tool:
        """A function tool whose arguments follow ``parameters`` (a pydantic model class or a JSON schema)."""
        schema = parameters.model_json_schema() if isinstance(parameters, type) else parameters
        return cls(function=FunctionDefinition(name=name, description=description, parameters=schema))


# ---------------------------------------------------------------------------- requests


class CompletionRequest(_Request):
    """Body of ``POST /v1/completions``."""

    model: str | None = None
    prompt: str | list[str]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    n: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    logprobs: int | None = None
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None


class ChatCompletionRequest(_Request):
    """Body of ``POST /v1/chat/completions``."""

    model: str | None = None
    messages: list[ChatMessage]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    n: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    tools: list[Tool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None


class ResponsesRequest(_Request):
    """Body of ``POST /v1/responses``."""

    model: str | None = None
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    text: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    stream: bool | None = None


class EmbeddingRequest(_Request):
    """Body of ``POST /v1/embeddings``."""

    model: str | None = None
    input: str | list[str]
    # Explicit, because the openai package defaults to base64 and servers may follow it.
    encoding_format: Literal["float", "base64"] = "float"


class TextClassificationRequest(_Request):
    """Body of ``POST /v1/classify/text``; without ``model`` the server chooses (a classifier with its own
    labels, or a zero-shot model when ``labels`` are given)."""

    model: str | None = None
    input: str | list[str]
    labels: list[str] | None = None
    top_k: int | None = None
    explain: bool | None = None


class ImageClassificationRequest(_Request):
    """Form fields of ``POST /v1/classify/image`` (the images travel as file parts)."""

    model: str | None = None
    top_k: int | None = None
    explain: bool | None = None
    explain_overlay: bool | None = None

    def to_form(self) -> list[tuple[str, str]]:
        """The form fields as text (a form has no booleans: ``true``/``false``, as the server reads them)."""
        return [(k, str(v).lower() if isinstance(v, bool) else str(v)) for k, v in self.to_body().items()]


class EntityRequest(_Request):
    """Body of ``POST /v1/entities``."""

    model: str | None = None
    input: str | list[str]
    aggregation: Literal["simple", "none"] | None = None


class PiiRequest(_Request):
    """Body of ``POST /v1/pii``."""

    model: str | None = None
    input: str | list[str]
    types: list[str] | None = None
    score_threshold: float | None = None
    redact: Literal["type", "mask"] | None = None
    mask_char: str | None = None
    include_text: bool | None = None


class DetectionRequest(_Request):
    """Form fields of the detection routes (``POST /v1/detect/objects``, ``/v1/detect/faces``,
    ``/v1/faces/embeddings``); the images travel as file parts."""

    model: str | None = None
    score_threshold: float | None = None
    iou_threshold: float | None = None
    max_detections: int | None = None

    def to_form(self) -> list[tuple[str, str]]:
        """The form fields as text, unset ones left out (the server's defaults apply)."""
        return [(k, str(v)) for k, v in self.to_body().items()]


class TextReadingRequest(_Request):
    """Form fields of ``POST /v1/ocr``; the images travel as file parts."""

    model: str | None = None
    score_threshold: float | None = None

    def to_form(self) -> list[tuple[str, str]]:
        """The form fields as text, unset ones left out (the server's defaults apply)."""
        return [(k, str(v)) for k, v in self.to_body().items()]


class RoleRequest(_Request):
    """Body of ``POST /v1/srl``."""

    model: str | None = None
    input: str | list[str]


# ---------------------------------------------------------------------------- completions


class CompletionLogprobs(_Response):
    """Per-token log probabilities of a completion choice."""

    tokens: list[str] = Field(default_factory=list)
    token_logprobs: list[float | None] = Field(default_factory=list)
    top_logprobs: list[dict[str, float] | None] | None = None
    text_offset: list[int] = Field(default_factory=list)


class CompletionChoice(_Response):
    """One generated text."""

    index: int = 0
    text: str = ""
    finish_reason: str | None = None
    logprobs: CompletionLogprobs | None = None


class Completion(_Response):
    """Result of :meth:`Client.generate`; ``text`` is the first choice's text."""

    id: str = ""
    object: str = "text_completion"
    created: int = 0
    model: str = ""
    choices: list[CompletionChoice]
    usage: Usage | None = None

    @property
    def text(self) -> str:
        """The first choice's text ("" when there is no choice)."""
        return self.choices[0].text if self.choices else ""


class CompletionChunk(_Response):
    """One streamed piece of a completion; ``text`` is the new text."""

    id: str = ""
    object: str = "text_completion"
    created: int = 0
    model: str = ""
    choices: list[CompletionChoice] = Field(default_factory=list)
    usage: Usage | None = None

    @property
    def text(self) -> str:
        """The first choice's new text ("" for e.g. a usage-only chunk)."""
        return self.choices[0].text if self.choices else ""

    def _stream_part(self) -> StreamPart:
        first = next((choice for choice in self.choices if choice.index == 0), None)
        return StreamPart(first.text if first else "", first.finish_reason if first else None, self.usage)


# ---------------------------------------------------------------------------- chat


class TopLogprob(_Response):
    """An alternative token and its log probability."""

    token: str
    logprob: float
    bytes: list[int] | None = None


class ChatTokenLogprob(TopLogprob):
    """A generated token, its log probability and the most likely alternatives."""

    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class ChatChoiceLogprobs(_Response):
    """Log probabilities of a chat choice's content tokens."""

    content: list[ChatTokenLogprob] | None = None


class ChatChoice(_Response):
    """One generated reply."""

    index: int = 0
    message: ChatMessage
    finish_reason: str | None = None
    logprobs: ChatChoiceLogprobs | None = None


class ChatCompletion(_Response):
    """Result of :meth:`Client.chat`; ``text`` is the first reply's content."""

    id: str = ""
    object: str = "chat.completion"
    created: int = 0
    model: str = ""
    choices: list[ChatChoice]
    usage: Usage | None = None

    @property
    def text(self) -> str:
        """The first choice's message content as text ("" when empty)."""
        if not self.choices:
            return ""
        return _content_text(self.choices[0].message.content)

    @property
    def tool_calls(self) -> list[ToolCall]:
        """The first choice's tool calls ([] when the model answered in text)."""
        return (self.choices[0].message.tool_calls or []) if self.choices else []


class ChatDelta(_Response):
    """What a streamed chat chunk adds to its choice's message (tool calls arrive whole, with ``index``)."""

    role: str | None = None
    content: str | None = None
    tool_calls: list[ToolCall] | None = None


class ChatChunkChoice(_Response):
    """One choice's part of a streamed chat chunk."""

    index: int = 0
    delta: ChatDelta = Field(default_factory=ChatDelta)
    finish_reason: str | None = None
    logprobs: ChatChoiceLogprobs | None = None


class ChatCompletionChunk(_Response):
    """One streamed piece of a chat reply; ``text`` is the new content."""

    id: str = ""
    object: str = "chat.completion.chunk"
    created: int = 0
    model: str = ""
    choices: list[ChatChunkChoice] = Field(default_factory=list)
    usage: Usage | None = None

    @property
    def text(self) -> str:
        """The first choice's new content ("" for a role-only or usage-only chunk)."""
        return (self.choices[0].delta.content or "") if self.choices else ""

    def _stream_part(self) -> StreamPart:
        first = next((choice for choice in self.choices if choice.index == 0), None)
        text = (first.delta.content or "") if first else ""
        return StreamPart(text, first.finish_reason if first else None, self.usage)


def _content_text(content: str | list[ContentPart] | None) -> str:
    if isinstance(content, list):
        return "".join(part.text or "" for part in content)
    return content or ""


# ---------------------------------------------------------------------------- embeddings


class Embedding(_Response):
    """One input's vector."""

    object: str = "embedding"
    index: int = 0
    embedding: list[float]

    @field_validator("embedding", mode="before")
    @classmethod
    def _decode_base64(cls, value: Any) -> Any:
        # A server may answer base64 (little-endian float32) even though we ask for floats.
        if isinstance(value, str):
            floats = array.array("f", base64.b64decode(value))
            if sys.byteorder == "big":
                floats.byteswap()
            return floats.tolist()
        return value


class Embeddings(_Response):
    """Result of :meth:`Client.embed`; ``vectors`` lists the vectors in input order."""

    object: str = "list"
    data: list[Embedding]
    model: str = ""
    usage: Usage | None = None

    @property
    def vectors(self) -> list[list[float]]:
        """One vector per input, in input order."""
        return [item.embedding for item in sorted(self.data, key=lambda item: item.index)]

    def __repr__(self) -> str:
        # The default repr prints every float: thousands of numbers for one call.
        size = len(self.data[0].embedding) if self.data else 0
        first = ", ".join(f"{x:.4f}" for x in self.data[0].embedding[:3]) if self.data else ""
        more = ", ..." if size > 3 else ""
        return f"Embeddings(model={self.model!r}, shape=({len(self.data)}, {size}), data=[[{first}{more}], ...])"


# ---------------------------------------------------------------------------- classification


class LabelScore(_Response):
    """A label and its probability."""

    label: str
    score: float


class TokenWeight(_Response):
    """One input token's share in the top label: ``weight`` in [-1, 1], > 0 for it, < 0 against it."""

    text: str
    start: int
    end: int
    weight: float


class Explanation(_Response):
    """Why the top label: ``tokens`` for a text, ``grid`` (rows of weights in [0, 1] over the image as the
    model saw it) and optionally ``overlay_png`` (base64) for an image."""

    label: str
    tokens: list[TokenWeight] | None = None
    grid: list[list[float]] | None = None
    overlay_png: str | None = None

    @property
    def overlay(self) -> bytes | None:
        """The heatmap overlay as PNG bytes (``explain_overlay=True``), else ``None``."""
        return base64.b64decode(self.overlay_png) if self.overlay_png else None

    def _repr_html_(self) -> str:
        """Tokens shaded by weight (green for the label, red against), or the heatmap, for notebooks."""
        return f'<div style="font-family:sans-serif;font-size:13px">{_explanation_html(self)}</div>'


class ClassificationItem(_Response):
    """The labels of one input, best first, and the explanation when one was asked for."""

    index: int = 0
    labels: list[LabelScore]
    explanation: Explanation | None = None

    @property
    def label(self) -> str | None:
        """The best label (``None`` when the list is empty)."""
        return self.labels[0].label if self.labels else None


class Classification(_Response):
    """Result of :meth:`Client.classify_text` / :meth:`Client.classify_image`.

    ``data`` holds one item per input; ``labels`` and ``label`` are shortcuts for the
    first input, the common single-input case.
    """

    object: str = "list"
    model: str = ""
    data: list[ClassificationItem]
    usage: Usage | None = None

    @property
    def labels(self) -> list[LabelScore]:
        """The first input's labels, best first."""
        return self.data[0].labels if self.data else []

    @property
    def label(self) -> str | None:
        """The first input's best label."""
        return self.data[0].label if self.data else None

    def _repr_html_(self) -> str:
        """Labels and scores as bars, for notebooks."""
        items = "".join(_item_html(item, len(self.data) > 1) for item in self.data)
        title = html.escape(self.model or "classification")
        return (
            '<div class="maas-classification" style="font-family:sans-serif;font-size:13px">'
            f'<div style="color:#666;margin-bottom:4px">{title}</div>{items}</div>'
        )


def _item_html(item: ClassificationItem, numbered: bool) -> str:
    rows = "".join(
        "<tr>"
        f'<td style="padding:1px 8px 1px 0;text-align:right">{html.escape(score.label)}</td>'
        '<td style="width:200px;padding:1px 0"><div style="background:#eee;width:200px">'
        f'<div style="background:#4c78a8;height:12px;width:{_percent(score.score):.1f}%"></div>'
        "</div></td>"
        f'<td style="padding:1px 0 1px 8px;font-family:monospace">{score.score:.3f}</td>'
        "</tr>"
        for score in item.labels
    )
    heading = f'<div style="color:#666">input {item.index}</div>' if numbered else ""
    explained = _explanation_html(item.explanation) if item.explanation else ""
    return f"{heading}<table style=\"border-collapse:collapse;margin-bottom:6px\">{rows}</table>{explained}"


def _explanation_html(explanation: Explanation) -> str:
    title = f'<div style="color:#666">why {html.escape(explanation.label)}:</div>'
    if explanation.tokens is not None:
        return title + "".join(_token_html(token) for token in explanation.tokens)
    if explanation.overlay_png:
        return title + f'<img src="data:image/png;base64,{explanation.overlay_png}" style="max-width:256px">'
    if explanation.grid:
        return title + _grid_html(explanation.grid)
    return ""


def _token_html(token: TokenWeight) -> str:
    weight = min(max(token.weight, -1.0), 1.0)
    colour = f"rgba(44,160,44,{weight:.2f})" if weight >= 0 else f"rgba(214,39,40,{-weight:.2f})"
    return (f'<span title="{weight:+.2f}" style="background:{colour};padding:1px 2px;margin:0 1px;'
            f'border-radius:2px">{html.escape(token.text)}</span>')


def _grid_html(grid: list[list[float]]) -> str:
    cell = '<td style="width:8px;height:8px;padding:0;background:rgba(214,39,40,{:.2f})"></td>'
    cells = "".join("<tr>" + "".join(cell.format(min(max(v, 0.0), 1.0)) for v in row) + "</tr>" for row in grid)
    return f'<table style="border-collapse:collapse">{cells}</table>'


def _percent(score: float) -> float:
    return min(max(score, 0.0), 1.0) * 100


# ---------------------------------------------------------------------------- named entities


class PiiSpan(_Response):
    """Personal data found in an input: its ``type`` (``PERSON``, ``EMAIL_ADDRESS``...), character offsets
    (``input[start:end]``) and the recognizer's ``score`` in [0, 1]; ``text`` only when asked for
    (``include_text=True``)."""

    type: str
    start: int
    end: int
    score: float
    text: str | None = None


class PiiResult(_Response):
    """One input's personal data, in order (spans never overlap), and the input redacted when asked."""

    index: int = 0
    entities: list[PiiSpan]
    redacted: str | None = None


class PiiResults(_Response):
    """Result of :meth:`Client.detect_pii` and :meth:`Client.redact`: one item per input in ``data``;
    ``entities`` and ``redacted`` are the first input's."""

    object: str = "list"
    model: str = ""
    data: list[PiiResult]
    usage: Usage | None = None

    @property
    def entities(self) -> list[PiiSpan]:
        """The first input's spans."""
        return self.data[0].entities if self.data else []

    @property
    def redacted(self) -> str | None:
        """The first input, redacted (None unless redaction was asked for)."""
        return self.data[0].redacted if self.data else None

    @property
    def redacted_texts(self) -> list[str | None]:
        """Every input, redacted, in order."""
        return [item.redacted for item in self.data]


class Entity(_Response):
    """A named entity found in an input: ``input[start:end] == text`` (character offsets).

    ``label`` is its type (``PERSON``, ``GPE``...), or with ``aggregation="none"`` a token's IOB
    tag (``B-PERSON``). ``score`` is the model's probability, or ``None`` when the model gives
    none (spaCy pipelines, such as maas's default ``en-core-web-sm``).
    """

    text: str
    label: str
    start: int
    end: int
    score: float | None = None


class EntityResult(_Response):
    """The entities of one input, in the order they occur."""

    index: int = 0
    entities: list[Entity]


class Entities(_Response):
    """Result of :meth:`Client.extract_entities`.

    ``data`` holds one item per input; ``entities`` is a shortcut for the first input's. In a
    notebook the result shows each input with its entities highlighted (the client keeps the
    texts it sent for that; they are not part of the server's answer).
    """

    object: str = "list"
    model: str = ""
    data: list[EntityResult]
    usage: Usage | None = None
    _texts: list[str] | None = PrivateAttr(default=None)

    @property
    def entities(self) -> list[Entity]:
        """The first input's entities."""
        return self.data[0].entities if self.data else []

    def _with_texts(self, texts: Sequence[str]) -> Entities:
        self._texts = list(texts)
        return self

    def _repr_html_(self) -> str:
        """Each input with its entities highlighted inline (or a table when the texts are unknown)."""
        texts = self._texts or []
        items = "".join(
            _entities_html(item, texts[item.index] if item.index < len(texts) else None, len(self.data) > 1)
            for item in self.data
        )
        title = html.escape(self.model or "entities")
        return (
            '<div class="maas-entities" style="font-family:sans-serif;font-size:13px">'
            f'<div style="color:#666;margin-bottom:4px">{title}</div>{items}</div>'
        )


def _panel(css_class: str, title: str, body: str) -> str:
    """A notebook view's frame: an escaped `title` above `body` (HTML the caller built and escaped)."""
    return (f'<div class="{css_class}" style="font-family:sans-serif;font-size:13px">'
            f'<div style="color:#666;margin-bottom:4px">{title}</div>{body}</div>')


def _keep_images(items: Sequence[Any], images: list[tuple[bytes, str]]) -> None:
    """Give each item the uploaded image (bytes, content type) it describes, by its index."""
    for item in items:
        if 0 <= item.index < len(images):
            item._image = images[item.index]


_PALETTE = ("#fde68a", "#bfdbfe", "#bbf7d0", "#fbcfe8", "#ddd6fe", "#fed7aa", "#a5f3fc", "#e5e7eb")


def _entities_html(item: EntityResult, text: str | None, numbered: bool) -> str:
    heading = f'<div style="color:#666">input {item.index}</div>' if numbered else ""
    if text is None:
        rows = "".join(
            f"<tr><td>{html.escape(e.text)}</td><td>{html.escape(e.label)}</td>"
            f"<td>{e.start}:{e.end}</td><td>{_score_text(e.score)}</td></tr>"
            for e in item.entities
        )
        return f'{heading}<table style="margin-bottom:6px">{rows}</table>'
    style = "white-space:pre-wrap;line-height:1.9;margin-bottom:6px"  # keep the text's own line breaks
    return f'{heading}<div style="{style}">{_highlighted(text, item.entities)}</div>'


def _highlighted(text: str, entities: list[Entity]) -> str:
    """`text`, escaped, with each entity wrapped in a coloured <mark> labelled with its type."""
    parts, position = [], 0
    for entity in sorted(entities, key=lambda e: (e.start, e.end)):
        if entity.start < position or text[entity.start:entity.end] != entity.text:
            continue  # overlapping, or not this text's characters: leave it out rather than garble the text
        colour = _PALETTE[zlib.crc32(entity.label.encode()) % len(_PALETTE)]  # stable across sessions
        tip = html.escape(f"{entity.label} {_score_text(entity.score)}", quote=True)
        parts.append(html.escape(text[position:entity.start]))
        parts.append(
            f'<mark title="{tip}" style="background:{colour};padding:1px 3px;border-radius:3px">'
            f"{html.escape(entity.text)}"
            f'<span style="font-size:9px;font-weight:bold;margin-left:3px">{html.escape(entity.label)}</span></mark>'
        )
        position = entity.end
    parts.append(html.escape(text[position:]))
    return "".join(parts)


def _score_text(score: float | None) -> str:
    return "-" if score is None else f"{score:.3f}"
# ---------------------------------------------------------------------------- object detection


class Box(_Response):
    """A rectangle in pixels of the image as sent: ``(x1, y1)`` top left, ``(x2, y2)`` bottom right."""

    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1


class DetectedObject(_Response):
    """One thing found: its label, the model's confidence in [0, 1], and where it is."""

    label: str
    score: float
    box: Box


class ObjectDetectionItem(_Response):
    """What was found in one image, best first; ``width`` and ``height`` are the image's size as sent."""

    index: int = 0
    width: int = 0
    height: int = 0
    objects: list[DetectedObject]
    # The image as uploaded (bytes, content type), kept by Client.detect_objects for the notebook view.
    _image: tuple[bytes, str] | None = PrivateAttr(default=None)

    def _repr_html_(self) -> str:
        """The image with each box and its label drawn over it (just the boxes when the image is not held)."""
        return f'<div style="font-family:sans-serif;font-size:13px">{_detection_html(self)}</div>'


class ObjectDetections(_Response):
    """Result of :meth:`Client.detect_objects`: ``data`` holds one item per image, in order; ``objects`` is
    the first image's, the common single-image case. A notebook shows each image with its boxes."""

    object: str = "list"
    model: str = ""
    data: list[ObjectDetectionItem]
    usage: Usage | None = None

    @property
    def objects(self) -> list[DetectedObject]:
        """The first image's objects, best first."""
        return self.data[0].objects if self.data else []

    def _repr_html_(self) -> str:
        title = html.escape(self.model or "object detection")
        items = "".join(_detection_html(item) for item in self.data)
        return _panel("maas-detections", title, items)

    def _attach_images(self, images: list[tuple[bytes, str]]) -> None:
        """Keep the uploaded images (bytes, content type) with their items, for :meth:`_repr_html_`."""
        _keep_images(self.data, images)


# Formats a browser shows in an <img> (TIFF is not among them: the boxes are drawn on gray then).
_BROWSER_IMAGES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp"})
_BOX_COLOURS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324")


def _detection_html(item: ObjectDetectionItem) -> str:
    """The image as a base64 <img> with an SVG of the boxes over it; the SVG's viewBox is the image's pixels,
    so the boxes scale with the picture."""
    width, height = max(item.width, 1), max(item.height, 1)
    picture = _picture_html(item._image, width, height)
    boxes = "".join(_box_svg(o, max(width, height)) for o in item.objects)
    svg = (f'<svg viewBox="0 0 {width} {height}" preserveAspectRatio="none" '
           f'style="position:absolute;left:0;top:0;width:100%;height:100%">{boxes}</svg>')
    found = ", ".join(f"{html.escape(o.label)} {o.score:.2f}" for o in item.objects) or "nothing found"
    return (f'<div style="color:#666">image {item.index}: {found}</div>'
            f'<div style="position:relative;display:inline-block;width:{min(item.width, 512) or 512}px;'
            f'max-width:100%;margin-bottom:6px">{picture}{svg}</div>')


def _picture_html(image: tuple[bytes, str] | None, width: int, height: int) -> str:
    """The uploaded image as a base64 <img>, or a grey area of its shape when a browser cannot show it."""
    if image is not None and image[1] in _BROWSER_IMAGES:
        return (f'<img src="data:{image[1]};base64,{base64.b64encode(image[0]).decode()}" '
                'style="display:block;width:100%;height:auto">')
    return f'<div style="width:100%;aspect-ratio:{width}/{height};background:#ddd"></div>'


def _box_svg(found: DetectedObject, side: int) -> str:
    colour = _BOX_COLOURS[sum(map(ord, found.label)) % len(_BOX_COLOURS)]  # one colour per label, stable
    box, stroke, font = found.box, max(side / 200, 1), max(side / 40, 8)
    text = html.escape(f"{found.label} {found.score:.2f}")
    return (f'<rect x="{box.x1:.1f}" y="{box.y1:.1f}" width="{box.width:.1f}" height="{box.height:.1f}" '
            f'fill="none" stroke="{colour}" stroke-width="{stroke:.1f}"/>'
            f'<text x="{box.x1:.1f}" y="{max(box.y1 - stroke, font):.1f}" fill="{colour}" font-size="{font:.1f}" '
            f'font-family="sans-serif" paint-order="stroke" stroke="white" stroke-width="{stroke:.1f}">{text}</text>')


# ---------------------------------------------------------------------------- faces


class Point(_Response):
    """A point in pixels of the image as sent."""

    x: float
    y: float


class Face(_Response):
    """One face: the model's confidence in [0, 1], its box, five landmarks (``left_eye``, ``right_eye``, ``nose``,
    ``mouth_left``, ``mouth_right``, left and right as seen in the image) and, from :meth:`Client.embed_faces`, the
    face's vector (``embedding``)."""

    score: float
    box: Box
    landmarks: dict[str, Point] | None = None
    embedding: list[float] | None = None

    def distance(self, other: Face) -> float:
        """The Euclidean distance between two faces' vectors: under 0.6 they show one person (dlib's threshold)."""
        if self.embedding is None or other.embedding is None:
            raise ValueError("both faces need an embedding: get them from Client.embed_faces")
        if len(self.embedding) != len(other.embedding):
            raise ValueError(f"the vectors differ in size ({len(self.embedding)} vs {len(other.embedding)}): "
                             "they come from different models")
        return math.dist(self.embedding, other.embedding)


class FaceDetectionItem(_Response):
    """The faces in one image, best first; ``width`` and ``height`` are the image's size as sent."""

    index: int = 0
    width: int = 0
    height: int = 0
    faces: list[Face]
    # The image as uploaded (bytes, content type), kept by the client for the notebook view; never sent on.
    _image: tuple[bytes, str] | None = PrivateAttr(default=None)

    def _repr_html_(self) -> str:
        """The image with each face's box and landmarks drawn over it."""
        return f'<div style="font-family:sans-serif;font-size:13px">{_faces_html(self)}</div>'


class FaceDetections(_Response):
    """Result of :meth:`Client.detect_faces` and :meth:`Client.embed_faces`: ``data`` holds one item per image,
    in order; ``faces`` is the first image's, the common single-image case. A notebook shows each image with its
    faces marked."""

    object: str = "list"
    model: str = ""
    data: list[FaceDetectionItem]
    usage: Usage | None = None

    @property
    def faces(self) -> list[Face]:
        """The first image's faces, best first."""
        return self.data[0].faces if self.data else []

    def _repr_html_(self) -> str:
        title = html.escape(self.model or "faces")
        items = "".join(_faces_html(item) for item in self.data)
        return _panel("maas-faces", title, items)

    def _attach_images(self, images: list[tuple[bytes, str]]) -> None:
        """Keep the uploaded images (bytes, content type) with their items, for :meth:`_repr_html_`."""
        _keep_images(self.data, images)


class FaceComparison(_Response):
    """Result of :meth:`Client.compare_faces`: the distance between the best face of each image and whether that
    makes them one person (``distance < threshold``)."""

    distance: float
    threshold: float
    same_person: bool
    a: Face
    b: Face


def _faces_html(item: FaceDetectionItem) -> str:
    """The image as a base64 <img> with an SVG over it whose viewBox is the image's pixels, so the marks scale
    with the picture."""
    width, height = max(item.width, 1), max(item.height, 1)
    marks = "".join(_face_svg(face, max(width, height)) for face in item.faces)
    found = ", ".join(f"{face.score:.2f}" for face in item.faces)
    caption = f"{len(item.faces)} face{'' if len(item.faces) == 1 else 's'}" + (f" ({found})" if found else "")
    svg = (f'<svg viewBox="0 0 {width} {height}" preserveAspectRatio="none" '
           f'style="position:absolute;left:0;top:0;width:100%;height:100%">{marks}</svg>')
    return (f'<div style="color:#666">image {item.index}: {caption}</div>'
            f'<div style="position:relative;display:inline-block;width:{min(item.width, 512) or 512}px;'
            f'max-width:100%;margin-bottom:6px">{_picture_html(item._image, width, height)}{svg}</div>')


def _face_svg(face: Face, side: int) -> str:
    box, stroke = face.box, max(side / 200, 1)
    dots = "".join(f'<circle cx="{p.x:.1f}" cy="{p.y:.1f}" r="{stroke * 1.5:.1f}" fill="#ffe119"/>'
                   for p in (face.landmarks or {}).values())
    return (f'<rect x="{box.x1:.1f}" y="{box.y1:.1f}" width="{box.width:.1f}" height="{box.height:.1f}" '
            f'fill="none" stroke="#3cb44b" stroke-width="{stroke:.1f}"><title>{face.score:.3f}</title></rect>{dots}')


# ---------------------------------------------------------------------------- models


class ModelInfo(_Response):
    """One served model. ``task``, ``endpoints``, ``device``, ``dtype``, ``ready`` are maas
    additions: an OpenAI-compatible server leaves them ``None``."""

    id: str
    object: str = "model"
    created: int = 0
    owned_by: str = ""
    task: str | None = None
    endpoints: list[str] | None = None
    device: str | None = None
    dtype: str | None = None
    ready: bool | None = None


class ModelList(_Response):
    """Body of ``GET /v1/models``."""

    object: str = "list"
    data: list[ModelInfo]

    def _stamp(self, request_id: str | None) -> None:
        super()._stamp(request_id)
        for info in self.data:  # the client returns the list, so each entry carries the id
            info._stamp(request_id)


# ---------------------------------------------------------------------------- usage


class UsageRow(_Response):
    """The caller's totals for one model (``model`` is ``None`` for calls that named none)."""

    model: str | None = None
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    mean_latency_ms: float = 0.0
    compute_seconds: float = 0.0  # seconds of model time the calls used (what a compute limit counts)


class UsageReport(_Response):
    """Result of :meth:`Client.usage`: the caller's usage per model; ``key`` is the API key's name
    (``None`` when the calls carry none), ``since`` the start of the period (Unix seconds, ``None``: all time)."""

    object: str = "usage"
    key: str | None = None
    since: float | None = None
    data: list[UsageRow]

    @property
    def total_tokens(self) -> int:
        """Tokens over every model."""
        return sum(row.total_tokens for row in self.data)


# ---------------------------------------------------------------------------- admin API (admin keys only)


class AdminKey(_Response):
    """An API key's record as the admin API shows it: never the key itself (see :class:`CreatedKey`).

    ``rpm``/``tpm``/``cpm`` are its limits per minute (requests, tokens, compute seconds; ``None``:
    unlimited); ``models``/``tasks`` its scopes (``None``: every one); times are Unix seconds.
    """

    object: str = "api_key"
    id: int
    name: str
    prefix: str
    status: str  # active, expired or revoked
    rpm: int | None = None
    tpm: int | None = None
    cpm: float | None = None
    models: list[str] | None = None
    tasks: list[str] | None = None
    admin: bool = False
    zero_retention: bool = False  # nothing its requests carry or return is logged or stored
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None


class CreatedKey(AdminKey):
    """Result of :meth:`Client.admin_create_key`: the record and, this once, the key to hand over."""

    key: str


class AdminKeyList(_Response):
    """Body of ``GET /v1/admin/keys``."""

    object: str = "list"
    data: list[AdminKey]

    def _stamp(self, request_id: str | None) -> None:
        super()._stamp(request_id)
        for key in self.data:  # the client returns the list, so each entry carries the id
            key._stamp(request_id)


class UsageBucket(_Response):
    """One key's use of one model in one time bucket (``start``: its first second, Unix time, UTC)."""

    start: int
    key_id: int | None = None
    key: str | None = None  # None: calls made without a key
    model: str | None = None
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    mean_latency_ms: float = 0.0
    compute_seconds: float = 0.0


class AdminUsage(_Response):
    """Result of :meth:`Client.admin_usage`: totals per time bucket, key and model, oldest first.
    ``has_more``: the server holds more rows than one answer: narrow the range or filter."""

    object: str = "list"
    bucket: str
    since: float | None = None
    until: float | None = None
    has_more: bool = False
    data: list[UsageBucket]


class AuditEntry(_Response):
    """One change to a key: who (an admin key's name, or ``cli``), from where, what and when."""

    id: int
    at: float
    actor: str
    actor_key_id: int | None = None
    source: str
    action: str  # key.create, key.update or key.revoke
    key_id: int | None = None
    key_name: str | None = None
    changes: dict[str, Any] = {}


class AuditList(_Response):
    """Body of ``GET /v1/admin/audit``: the newest changes first."""

    object: str = "list"
    data: list[AuditEntry]

    def _stamp(self, request_id: str | None) -> None:
        super()._stamp(request_id)
        for entry in self.data:
            entry._stamp(request_id)


# ---------------------------------------------------------------------------- responses API


class ResponseContent(_Response):
    """One part of a message item, e.g. ``{"type": "output_text", "text": ...}``."""

    type: str
    text: str | None = None


class ResponseOutputItem(_Response):
    """One item of a response's output: a ``message`` (``content``) or a ``function_call``
    (``call_id``, ``name``, ``arguments`` as JSON text)."""

    type: str
    id: str | None = None
    status: str | None = None
    role: str | None = None
    content: list[ResponseContent] | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None


class ResponseUsage(_Response):
    """Token counts of a response (the Responses API's names)."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0


class ResponseObject(_Response):
    """Result of :meth:`Client.create_response` (``POST /v1/responses``); ``output_text`` is its text."""

    id: str = ""
    object: str = "response"
    created_at: int = 0
    model: str = ""
    status: str | None = None
    output: list[ResponseOutputItem]
    usage: ResponseUsage | None = None

    @property
    def output_text(self) -> str:
        """The text of every message item, joined."""
        return "".join(part.text or "" for item in self.output if item.type == "message"
                       for part in item.content or [] if part.type == "output_text")

    @property
    def function_calls(self) -> list[ResponseOutputItem]:
        """The ``function_call`` items ([] when the model answered in text)."""
        return [item for item in self.output if item.type == "function_call"]


class ResponseEvent(_Response):
    """One event of a streamed response: ``type`` is e.g. ``response.output_text.delta`` (``delta`` is
    the new text) or ``response.completed`` (``response`` is the whole :class:`ResponseObject`)."""

    type: str
    sequence_number: int = 0
    delta: str | None = None
    response: ResponseObject | None = None

    @property
    def text(self) -> str:
        """The new text of an ``output_text.delta`` event ("" for the others)."""
        return (self.delta or "") if self.type == "response.output_text.delta" else ""

    def _stream_part(self) -> StreamPart:
        # The last event carries the whole response: its status ("completed", "incomplete") ends the stream.
        response = self.response if self.type in _LAST_RESPONSE_EVENTS else None
        return StreamPart(self.text, response.status if response else None, response.usage if response else None)


_LAST_RESPONSE_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


class StreamPart(NamedTuple):
    """What one streamed chunk adds to its stream's summary (the first choice's part only)."""

    text: str
    finish_reason: str | None
    usage: Usage | ResponseUsage | None


class StreamSummary(_Response):
    """A stream's whole answer, gathered as it was read (:meth:`Stream.final`): ``text`` joins the
    first choice's new text, ``finish_reason`` is its last (``"stop"``, ``"length"``, ``"tool_calls"``;
    the final status for a Responses stream), ``usage`` the last usage sent (for chat and completions
    only with ``stream_options={"include_usage": True}``), ``chunks`` how many chunks were read."""

    text: str = ""
    finish_reason: str | None = None
    usage: Usage | ResponseUsage | None = None
    chunks: int = 0


# ---------------------------------------------------------------------------- speech


class TranscriptionWord(_Response):
    word: str
    start: float
    end: float


class TranscriptionSegment(_Response):
    """A stretch of speech: seconds from the start of the audio, and what was said."""

    id: int = 0
    start: float
    end: float
    text: str
    avg_logprob: float | None = None
    no_speech_prob: float | None = None


class Transcription(_Response):
    """Result of :meth:`Client.transcribe` and :meth:`Client.translate` (``task`` says which): the text,
    its language (ISO 639-1), the audio's duration in seconds,
    its timed segments, and its timed words when they were asked for. A notebook shows the segments as a table."""

    text: str
    task: str | None = None
    language: str | None = None
    duration: float | None = None
    segments: list[TranscriptionSegment] = []
    words: list[TranscriptionWord] | None = None

    def _repr_html_(self) -> str:
        rows = "".join(
            f'<tr><td style="color:#666;padding-right:8px;white-space:nowrap">{_clock(s.start)} - {_clock(s.end)}</td>'
            f"<td>{html.escape(s.text.strip())}</td></tr>"
            for s in self.segments
        )
        about = ", ".join(x for x in (self.language, f"{self.duration:.1f} s" if self.duration else None) if x)
        title = f"transcription ({html.escape(about)})" if about else "transcription"
        return (
            '<div class="maas-transcription" style="font-family:sans-serif;font-size:13px">'
            f'<div style="color:#666;margin-bottom:4px">{title}</div>'
            f"<table>{rows}</table></div>"
        )


def _clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}:{rest:05.2f}"


# ---------------------------------------------------------------------------- text in images, roles, scenes


class TextLine(_Response):
    """One line read in an image: its text, the recogniser's confidence in [0, 1], and its polygon (four
    ``[x, y]`` corners, clockwise from the top left of the text, in the pixels of the image as sent)."""

    text: str
    score: float
    box: list[list[float]]


class TextReadingItem(_Response):
    """The text of one image: ``lines`` in reading order, and ``text``, all of them (rows on lines of their own)."""

    index: int = 0
    width: int = 0
    height: int = 0
    text: str = ""
    lines: list[TextLine] = Field(default_factory=list)
    # The image as uploaded (bytes, content type), kept by Client.read_text for the notebook view.
    _image: tuple[bytes, str] | None = PrivateAttr(default=None)

    def _repr_html_(self) -> str:
        """The image with each line's polygon drawn over it, then the text."""
        return f'<div style="font-family:sans-serif;font-size:13px">{_reading_html(self)}</div>'


class TextReadings(_Response):
    """Result of :meth:`Client.read_text`: ``data`` holds one item per image; ``text`` and ``lines`` are the
    first image's."""

    object: str = "list"
    model: str = ""
    data: list[TextReadingItem]
    usage: Usage | None = None

    @property
    def text(self) -> str:
        """The first image's text, in reading order."""
        return self.data[0].text if self.data else ""

    @property
    def lines(self) -> list[TextLine]:
        return self.data[0].lines if self.data else []

    def _repr_html_(self) -> str:
        title = html.escape(self.model or "text in images")
        items = "".join(_reading_html(item) for item in self.data)
        return _panel("maas-readings", title, items)

    def _attach_images(self, images: list[tuple[bytes, str]]) -> None:
        """Keep the uploaded images (bytes, content type) with their items, for :meth:`_repr_html_`."""
        _keep_images(self.data, images)


def _reading_html(item: TextReadingItem) -> str:
    """The image with an SVG polygon over each line (viewBox in the image's pixels), and the text below it."""
    width, height = max(item.width, 1), max(item.height, 1)
    stroke = max(max(width, height) / 300, 1)
    polygons = "".join(
        f'<polygon points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in line.box)}" fill="none" stroke="#e6194b" '
        f'stroke-width="{stroke:.1f}"><title>{html.escape(f"{line.text} ({line.score:.2f})")}</title></polygon>'
        for line in item.lines)
    svg = (f'<svg viewBox="0 0 {width} {height}" preserveAspectRatio="none" '
           f'style="position:absolute;left:0;top:0;width:100%;height:100%">{polygons}</svg>')
    return (f'<div style="position:relative;display:inline-block;width:{min(item.width, 512) or 512}px;'
            f'max-width:100%;margin-bottom:4px">{_picture_html(item._image, width, height)}{svg}</div>'
            f'<pre style="margin:0 0 8px 0">{html.escape(item.text) or "(no text)"}</pre>')


class RoleArgument(_Response):
    """One argument of a verb: its PropBank role (ARG0, ARG1, ARGM-TMP...) and its characters in the input."""

    role: str
    text: str
    start: int
    end: int


class VerbFrame(_Response):
    """One verb with its roles, as AllenNLP gives them (``tags``, ``description``) and as character spans."""

    verb: str
    start: int = 0
    end: int = 0
    tags: list[str] = Field(default_factory=list)
    description: str = ""
    arguments: list[RoleArgument] = Field(default_factory=list)


class RoleLabellingItem(_Response):
    """The verbs of one input over its ``words``, and ``method``: "dependency-rules" or "model"."""

    index: int = 0
    words: list[str] = Field(default_factory=list)
    verbs: list[VerbFrame] = Field(default_factory=list)
    method: str = ""


class RoleLabellings(_Response):
    """Result of :meth:`Client.label_roles`: ``data`` holds one item per input; ``verbs`` is the first input's.
    A notebook shows each verb's frame over the words, each argument marked with its role."""

    object: str = "list"
    model: str = ""
    data: list[RoleLabellingItem]
    usage: Usage | None = None

    @property
    def verbs(self) -> list[VerbFrame]:
        return self.data[0].verbs if self.data else []

    def _repr_html_(self) -> str:
        title = html.escape(self.model or "semantic roles")
        frames = "".join(_frame_html(item.words, verb) for item in self.data for verb in item.verbs)
        return _panel("maas-roles", title, frames or "(no verbs)")


def _frame_html(words: list[str], verb: VerbFrame) -> str:
    """The words, escaped, with each BIO-tagged argument in a coloured <mark> labelled with its role."""
    if len(verb.tags) != len(words):
        return f'<div style="margin-bottom:6px">{html.escape(verb.description or verb.verb)}</div>'
    spans: list[tuple[str, list[str]]] = []  # (role, words); role "" outside every argument
    for word, tag in zip(words, verb.tags):
        prefix, _, role = tag.partition("-")
        if prefix == "I" and spans and spans[-1][0] == role:
            spans[-1][1].append(word)
        else:
            spans.append((role if prefix in ("B", "I") else "", [word]))
    parts = []
    for role, span in spans:
        text = html.escape(" ".join(span))
        if not role:
            parts.append(text)
            continue
        colour = "#fca5a5" if role == "V" else _PALETTE[zlib.crc32(role.encode()) % len(_PALETTE)]
        parts.append(f'<mark style="background:{colour};padding:1px 3px;border-radius:3px">{text}'
                     f'<span style="font-size:9px;font-weight:bold;margin-left:3px">{html.escape(role)}</span></mark>')
    return f'<div style="line-height:1.9;margin-bottom:6px">{" ".join(parts)}</div>'


class SceneEvidence(_Response):
    """A clue behind a scene: an ImageNet class ("imagenet"), a COCO object ("coco") or a Places365 class."""

    source: str
    label: str
    score: float


class SceneItem(_Response):
    """The scene of one image: Places365's top level and a finer label (None when nothing gives it away),
    ``method`` ("heuristic" or "model") and the evidence."""

    index: int = 0
    top_level: str | None = None
    label: str | None = None
    score: float = 0.0
    method: str = ""
    evidence: list[SceneEvidence] = Field(default_factory=list)


class Scenes(_Response):
    """Result of :meth:`Client.classify_scene`: one item per image; ``top_level`` and ``label`` are the first's."""

    object: str = "list"
    model: str = ""
    detector: str | None = None
    data: list[SceneItem]
    usage: Usage | None = None

    @property
    def top_level(self) -> str | None:
        return self.data[0].top_level if self.data else None

    @property
    def label(self) -> str | None:
        return self.data[0].label if self.data else None

    def _repr_html_(self) -> str:
        title = html.escape(self.model + (f" + {self.detector}" if self.detector else "") or "scenes")
        items = "".join(_scene_html(item) for item in self.data)
        return _panel("maas-scenes", title, items)


def _scene_html(item: SceneItem) -> str:
    """One image's scene (or that nothing gave it away), how it was found, and the evidence as bars."""
    if item.label is None:
        verdict = "no scene label: nothing in the image gives it away"
    else:
        verdict = f"{item.label} ({item.top_level}) {item.score:.2f}"
    rows = "".join(
        f"<tr><td>{html.escape(e.source)}</td><td>{html.escape(e.label)}</td>"
        f'<td><div style="background:#93c5fd;height:8px;width:{max(0.0, min(1.0, e.score)) * 120:.0f}px"></div></td>'
        f"<td>{e.score:.2f}</td></tr>" for e in item.evidence)
    return (f'<div style="margin-bottom:6px"><b>image {item.index}</b>: {html.escape(verdict)} '
            f'<span style="color:#666">[{html.escape(item.method)}]</span><table>{rows}</table></div>')
