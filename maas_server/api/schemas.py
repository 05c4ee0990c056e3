"""Request and response models for every route; /openapi.json is generated from these.

Requests are strict: unknown fields are rejected with a 400 naming them (a typo such as
`max_token` must not be silently ignored), and so are values of the wrong JSON type (`true` or
`"5"` where a number goes is not coerced; an integer where a float goes is fine). On the OpenAI
routes, `null` in an optional field means "not given", as OpenAI's reference allows; OpenAI fields
that change nothing here (`store`, `metadata`, `service_tier`...) are accepted and ignored, and
those we cannot honour are refused with a 400 naming them (docs/api.md has the table).
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from ..models.base import Aggregation, FinishReason, TokenIds

MAX_JSON_DEPTH = 32  # our deepest body (chat content parts) nests 5 levels
# Items in one JSON array of a body: validating is done holding the GIL (1 s for 200,000 chat
# messages, during which every stream stalls); the longest array a default model can use is a
# prompt of token ids (8,192).
MAX_JSON_ARRAY = 16_384


# What a token the model cannot choose (masked by a grammar, or underflowed) scores: -inf is not JSON, and
# OpenAI and vLLM write -9999.0 for it.
LOGPROB_FLOOR = -9999.0


def _finite_logprob(value: float) -> float:
    return value if math.isfinite(value) else LOGPROB_FLOOR


Logprob = Annotated[float, PlainSerializer(_finite_logprob, return_type=float)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Response(BaseModel):
    model_config = ConfigDict(extra="allow")


class _OpenAIRequest(_Request):
    """A request in OpenAI's shape: null in an optional field is the same as leaving it out.

    OpenAI's types mark nearly every optional parameter nullable, and wrappers (LangChain,
    LiteLLM, llama-index) send `"temperature": null` for "not set". A null in a required field,
    or in a field we do not know, still fails as it should.
    """

    @model_validator(mode="before")
    @classmethod
    def _null_means_absent(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        optional = {name for name, field in cls.model_fields.items() if not field.is_required()}
        return {key: value for key, value in data.items() if value is not None or key not in optional}


# -- shared pieces

class StreamOptions(_Request):
    include_usage: bool = False


class Usage(_Response):
    prompt_tokens: int
    completion_tokens: int = 0
    total_tokens: int


# A JSON schema is compiled into a grammar between decode steps, while every stream of the model
# waits: 100 KB compile in ~25 ms here; a 6 MB one took 1.2 s before the engine refused it.
MAX_SCHEMA_BYTES = 100_000


def _small_schema(schema: Any, what: str) -> None:
    if len(json.dumps(schema)) > MAX_SCHEMA_BYTES:
        raise ValueError(f"{what} is over this server's limit of {MAX_SCHEMA_BYTES} bytes of JSON schema")


class JsonSchemaFormat(_OpenAIRequest):
    """`response_format.json_schema`: the schema the output must follow (OpenAI's shape)."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    schema_: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None  # output always follows the schema here, strict or not
    description: str | None = None


class ResponseFormat(_OpenAIRequest):
    """Plain text, any JSON object, or JSON following a schema; enforced token by token."""

    type: Literal["text", "json_object", "json_schema", "json"]  # "json": TGI's older name for json_object
    json_schema: JsonSchemaFormat | None = None
    value: dict[str, Any] | None = None  # TGI's form: json_object with its schema here (huggingface_hub sends it)

    @model_validator(mode="after")
    def _schema_with_its_type(self) -> ResponseFormat:
        _small_schema([self.json_schema.schema_ if self.json_schema else None, self.value], "the schema")
        if (self.type == "json_schema") != (self.json_schema is not None):
            raise ValueError('json_schema goes with type "json_schema", and only with it')
        if self.value is not None and self.type not in ("json_object", "json"):
            raise ValueError('value (TGI\'s schema) goes with type "json_object" or "json", and only with them')
        return self

    def schema_text(self) -> str | None:
        """The JSON schema to enforce, as JSON text; None for plain text."""
        if self.type == "json_schema" and self.json_schema is not None:
            return json.dumps(self.json_schema.schema_)
        if self.type in ("json_object", "json"):
            return json.dumps(self.value if self.value is not None else {"type": "object"})
        return None


class _Sampling(_OpenAIRequest):
    """Sampling parameters shared by completions and chat (OpenAI names and ranges)."""

    model: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=-(2**63), le=2**64 - 1)  # what torch.Generator accepts
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    response_format: ResponseFormat | None = None
    # Accepted at their neutral values only (not implemented); the last three are vLLM's, sent by its users.
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    min_p: float | None = None

    @field_validator("top_k", "repetition_penalty", "min_p")
    @classmethod
    def _neutral_only(cls, value: float | None, info: ValidationInfo) -> float | None:
        neutral = {"top_k": (0, -1), "repetition_penalty": (1,), "min_p": (0,)}[info.field_name or ""]
        if value is not None and value not in neutral:
            raise ValueError(f"not supported by this server; omit it or send {neutral[0]} (no effect)")
        return value

    @field_validator("stop")
    @classmethod
    def _check_stop(cls, stop: str | list[str] | None) -> list[str]:
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        if len(stops) > 4 or any(not s for s in stops):
            raise ValueError("stop takes up to 4 non-empty strings")
        return stops

    @model_validator(mode="after")
    def _neutral_unsupported(self) -> _Sampling:
        for name in ("frequency_penalty", "presence_penalty"):
            if getattr(self, name) not in (None, 0, 0.0):
                raise ValueError(f"{name} is not supported by this server; omit it or send 0")
        if self.logit_bias:
            raise ValueError("logit_bias is not supported by this server; omit it")
        return self

    @property
    def stops(self) -> list[str]:
        return self.stop if isinstance(self.stop, list) else []


# -- completions

class CompletionRequest(_Sampling):
    prompt: str | list[str]
    max_tokens: int | None = Field(16, ge=1)
    logprobs: int | None = Field(None, ge=0, le=5)
    echo: Literal[False] = False
    best_of: Literal[1] | None = None
    suffix: None = None

    @property
    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


class CompletionLogprobs(_Response):
    tokens: list[str]
    token_logprobs: list[Logprob]
    top_logprobs: list[dict[str, Logprob]] | None
    text_offset: list[int]


class CompletionChoice(_Response):
    index: int
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: FinishReason | None = None


class Completion(_Response):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


# -- chat

class TextPart(_Request):
    type: Literal["text"]
    text: str


def nests_deeper(value: Any, limit: int) -> bool:
    """Whether parsed JSON has lists or objects nested more than `limit` levels (walked without recursion)."""
    pending = [(value, 1)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, (dict, list)):
            if level > limit:
                return True
            pending.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def _nested_within_limit(text: str) -> str:
    """JSON text inside a field (a call's arguments) nests no deeper than the body may: it is parsed later."""
    try:
        too_deep = nests_deeper(json.loads(text), MAX_JSON_DEPTH)
    except RecursionError:  # the parser recurses once per level: thousands exhaust its stack
        too_deep = True
    except ValueError:
        return text  # not JSON: passed on as the text it is
    if too_deep:
        raise ValueError(f"the JSON text nests deeper than {MAX_JSON_DEPTH} levels")
    return text


JsonText = Annotated[str, AfterValidator(_nested_within_limit)]


class FunctionCall(_OpenAIRequest):
    name: str = Field(min_length=1)
    arguments: JsonText  # JSON text, as OpenAI sends it


class ToolCallIn(_OpenAIRequest):
    """A call an earlier assistant turn made, sent back with the conversation."""

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(_OpenAIRequest):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None  # assistant turns that called tools
    tool_call_id: str | None = None  # tool turns: the call this answers

    @model_validator(mode="after")
    def _content_or_calls(self) -> ChatMessage:
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise ValueError("content is required, except in an assistant message with tool_calls")
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs tool_call_id: the call it answers")
        return self

    def text(self) -> str:
        if self.content is None:
            return ""
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)

    def as_dict(self) -> dict[str, Any]:
        """The message as the model layer takes it (developer is system to every chat template)."""
        message: dict[str, Any] = {"role": "system" if self.role == "developer" else self.role,
                                   "content": self.text()}
        if self.tool_calls:
            message["tool_calls"] = [call.model_dump() for call in self.tool_calls]
        if self.tool_call_id:
            message["tool_call_id"] = self.tool_call_id
        return message


class FunctionSpec(_OpenAIRequest):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None  # a JSON schema; none: the function takes no arguments
    strict: bool | None = None  # arguments always follow `parameters` when the server constrains them


class ToolSpec(_OpenAIRequest):
    type: Literal["function"]
    function: FunctionSpec


class NamedFunction(_OpenAIRequest):
    name: str


class NamedToolChoice(_OpenAIRequest):
    type: Literal["function"]
    function: NamedFunction


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    # OpenAI parameters that change nothing on a self-hosted server: accepted and ignored.
    store: bool | None = None
    metadata: dict[str, str] | None = None
    service_tier: str | None = None
    reasoning_effort: str | None = None
    verbosity: str | None = None
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None
    prediction: dict[str, Any] | None = None
    web_search_options: dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    modalities: list[Literal["text"]] | None = Field(
        None, description='only ["text"]: this server does not produce audio')
    tools: list[ToolSpec] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    # Refused with a 400 naming them, unless at a value that asks for nothing (the validators below).
    audio: dict[str, Any] | None = None
    function_call: str | dict[str, Any] | None = None
    functions: list[dict[str, Any]] | None = None

    @field_validator("audio")
    @classmethod
    def _no_audio(cls, audio: dict[str, Any]) -> None:
        raise ValueError("audio output is not supported by this server; omit it")

    @field_validator("functions", "function_call")
    @classmethod
    def _legacy_functions(cls, value: Any) -> None:
        raise ValueError("functions and function_call are OpenAI's deprecated form: send tools and tool_choice")

    @field_validator("tools")
    @classmethod
    def _small_tools(cls, tools: list[ToolSpec]) -> list[ToolSpec]:
        _small_schema([tool.function.parameters for tool in tools], "the tools' parameters")
        return tools

    @model_validator(mode="after")
    def _choice_among_tools(self) -> ChatCompletionRequest:
        choice = self.tool_choice
        names = {tool.function.name for tool in self.tools or []}
        if isinstance(choice, NamedToolChoice) and choice.function.name not in names:
            raise ValueError(f"tool_choice names {choice.function.name!r}, which is not among the tools")
        if choice == "required" and not names:
            raise ValueError('tool_choice "required" needs tools')
        return self

    @property
    def calls_tools(self) -> bool:
        """Whether the model is offered the tools (tool_choice "none", or no tools: it is not)."""
        return bool(self.tools) and self.tool_choice != "none"

    @model_validator(mode="after")
    def _logprob_options(self) -> ChatCompletionRequest:
        if self.top_logprobs is not None and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs: true")
        return self

    @property
    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class TopLogprob(_Response):
    token: str
    logprob: Logprob
    bytes: list[int] | None


class TokenLogprobOut(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChoiceLogprobs(_Response):
    content: list[TokenLogprobOut] | None


class FunctionCallOut(_Response):
    name: str
    arguments: str  # JSON text, as OpenAI gives it


class ToolCallOut(_Response):
    index: int | None = None  # in stream deltas only
    id: str
    type: Literal["function"] = "function"
    function: FunctionCallOut

    @model_serializer(mode="wrap")
    def _drop_unset(self, handler: Any) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


class AssistantMessage(_Response):
    role: Literal["assistant"] = "assistant"
    content: str | None
    tool_calls: list[ToolCallOut] | None = None

    @model_serializer(mode="wrap")
    def _drop_unset(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        if data.get("tool_calls") is None:
            data.pop("tool_calls", None)
        return data  # type: ignore[no-any-return]


class ChatChoice(_Response):
    index: int
    message: AssistantMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: FinishReason | Literal["tool_calls"] | None


class ChatCompletion(_Response):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class ChatDelta(_Response):
    """Only the fields that changed, as OpenAI sends them (absent, not null)."""

    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[ToolCallOut] | None = None

    @model_serializer(mode="wrap")
    def _drop_unset(self, handler: Any) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


class ChatChunkChoice(_Response):
    index: int
    delta: ChatDelta
    logprobs: ChoiceLogprobs | None = None
    finish_reason: FinishReason | Literal["tool_calls"] | None = None


class ChatCompletionChunk(_Response):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None


# -- responses (OpenAI's Responses API, for text)

class InputText(_OpenAIRequest):
    type: Literal["input_text", "output_text", "text"]
    text: str
    annotations: list[Any] | None = None  # on output_text sent back; ignored


class InputMessage(_OpenAIRequest):
    type: Literal["message"] | None = None
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[InputText]
    id: str | None = None
    status: str | None = None

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class FunctionCallItem(_OpenAIRequest):
    """A call the model made in an earlier turn, sent back with the conversation."""

    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: JsonText
    id: str | None = None
    status: str | None = None


class FunctionCallOutputItem(_OpenAIRequest):
    type: Literal["function_call_output"]
    call_id: str
    output: str
    id: str | None = None
    status: str | None = None


class TextFormat(_OpenAIRequest):
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None
    description: str | None = None


class TextOptions(_OpenAIRequest):
    format: TextFormat | None = None
    verbosity: str | None = None  # accepted and ignored


class ResponseTool(_OpenAIRequest):
    type: Literal["function"]
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ResponseToolChoice(_OpenAIRequest):
    type: Literal["function"]
    name: str


class ResponsesRequest(_OpenAIRequest):
    """`POST /v1/responses`, for text: what is honoured, ignored or refused is in docs/api.md."""

    model: str | None = None
    input: str | list[InputMessage | FunctionCallItem | FunctionCallOutputItem]
    instructions: str | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stream: bool = False
    text: TextOptions | None = None
    tools: list[ResponseTool] | None = None
    tool_choice: Literal["none", "auto", "required"] | ResponseToolChoice | None = None
    parallel_tool_calls: bool | None = None
    # No server-side state and one tier: accepted and ignored.
    store: bool | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    service_tier: str | None = None
    reasoning: dict[str, Any] | None = None
    truncation: str | None = None
    include: list[str] | None = None
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None
    # Refused: they need state kept between calls.
    previous_response_id: str | None = None
    conversation: str | dict[str, Any] | None = None
    background: bool | None = None

    @field_validator("previous_response_id", "conversation")
    @classmethod
    def _stateless(cls, value: Any) -> None:
        raise ValueError("this server keeps no responses: send the whole conversation in `input`")

    @field_validator("background")
    @classmethod
    def _no_background(cls, background: bool) -> bool:
        if background:
            raise ValueError("background responses need stored state, which this server does not keep")
        return background

    def as_chat(self) -> dict[str, Any]:
        """The same request as a chat completion body: one generation path for both APIs."""
        messages: list[dict[str, Any]] = [{"role": "system", "content": self.instructions}] if self.instructions else []
        items = [InputMessage(role="user", content=self.input)] if isinstance(self.input, str) else self.input
        for item in items:
            if isinstance(item, InputMessage):
                messages.append({"role": item.role, "content": item.text()})
            elif isinstance(item, FunctionCallItem):
                messages.append({"role": "assistant", "content": None, "tool_calls": [
                    {"id": item.call_id, "type": "function",
                     "function": {"name": item.name, "arguments": item.arguments}}]})
            else:
                messages.append({"role": "tool", "tool_call_id": item.call_id, "content": item.output})
        chat: dict[str, Any] = {"model": self.model, "messages": messages, "max_tokens": self.max_output_tokens,
                                "temperature": self.temperature, "top_p": self.top_p, "stream": self.stream,
                                "parallel_tool_calls": self.parallel_tool_calls}
        if self.text is not None and self.text.format is not None and self.text.format.type != "text":
            fmt = self.text.format
            chat["response_format"] = ({"type": "json_object"} if fmt.type == "json_object" else {
                "type": "json_schema", "json_schema": {"name": fmt.name or "output", "schema": fmt.schema_ or {}}})
        if self.tools:
            chat["tools"] = [{"type": "function", "function": tool.model_dump(exclude={"type"}, exclude_none=True)}
                             for tool in self.tools]
        if isinstance(self.tool_choice, ResponseToolChoice):
            chat["tool_choice"] = {"type": "function", "function": {"name": self.tool_choice.name}}
        elif self.tool_choice is not None:
            chat["tool_choice"] = self.tool_choice
        return chat


class ResponseObject(_Response):
    """A Responses API response (the fields every answer carries; the rest as OpenAI documents them)."""

    id: str
    object: Literal["response"] = "response"
    created_at: int
    model: str
    status: Literal["completed", "incomplete", "in_progress"]
    output: list[dict[str, Any]]  # {"type": "message", "content": [{"type": "output_text", "text"}]} or function_call
    usage: dict[str, Any] | None = None


class ResponseEvent(_Response):
    """One server-sent event of a streamed response: `type` says which (response.output_text.delta...)."""

    type: str
    sequence_number: int


# -- embeddings

class EmbeddingRequest(_OpenAIRequest):
    model: str | None = None
    # Strings, or token ids in the model's own vocabulary (one list, or a list per input), as vLLM takes.
    input: str | list[str] | list[Annotated[int, Field(ge=0)]] | list[list[Annotated[int, Field(ge=0)]]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None

    @property
    def inputs(self) -> list[str | TokenIds]:
        if isinstance(self.input, str):
            return [self.input]
        items: list[Any] = list(self.input)
        if items and all(isinstance(x, int) for x in items):  # one list of ids is one input
            return [TokenIds(tuple(items))]
        return [x if isinstance(x, str) else TokenIds(tuple(x)) for x in items]


class Embedding(_Response):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingList(_Response):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: Usage


# -- classification

class TextClassificationRequest(_Request):
    model: str | None = None
    input: str | list[str]
    labels: list[str] | None = None
    top_k: int | None = Field(None, ge=1)
    explain: bool = Field(False, description="also weigh each input token for the top label (costs a backward "
                                             "pass: its own queue and a lower input limit, max_explain_inputs)")

    @field_validator("labels")
    @classmethod
    def _distinct_labels(cls, labels: list[str] | None) -> list[str] | None:
        if labels is not None:
            if not labels or any(not label.strip() for label in labels):
                raise ValueError("labels must be a non-empty list of non-empty strings")
            if len(set(labels)) != len(labels):
                raise ValueError("labels must be distinct")
        return labels

    @property
    def inputs(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class ImageRequest(_Request):
    """Any route that takes images: the JSON form; the multipart form carries the same fields as form fields
    plus file parts (api/images.py, read_image_request)."""

    model: str | None = None
    image: str | list[str] = Field(description="base64 image bytes, optionally as a data: URL")

    @property
    def images(self) -> list[str]:
        return [self.image] if isinstance(self.image, str) else list(self.image)


class ImageClassificationRequest(ImageRequest):
    top_k: int | None = Field(5, ge=1)
    explain: bool = Field(False, description="also return where the model looked for the top label (Grad-CAM): "
                                             "a backward pass, with its own queue and max_explain_inputs")
    explain_overlay: bool = Field(False, description="with the explanation, a PNG of the heatmap over the image as "
                                                     "the model saw it (base64); implies explain")


class DetectionRequest(ImageRequest):
    """Objects or faces in images: the image forms of ImageRequest plus how picky to be."""

    score_threshold: float = Field(0.25, ge=0, le=1, allow_inf_nan=False,
                                   description="leave out what the model is less sure of than this")
    iou_threshold: float = Field(0.45, ge=0, le=1, allow_inf_nan=False,
                                 description="boxes of one label overlapping more than this (intersection over "
                                             "union) count as one thing: the best is kept")
    max_detections: int = Field(100, ge=1, le=1000, description="at most this many per image, best first")


class BoxOut(_Response):
    """A rectangle in pixels of the original image: x to the right, y down."""

    x1: float
    y1: float
    x2: float
    y2: float


class Point(_Response):
    x: float
    y: float


class DetectedObject(_Response):
    label: str
    score: float
    box: BoxOut


class ObjectDetections(_Response):
    index: int
    width: int = Field(description="the original image's size in pixels; boxes are in these pixels")
    height: int
    objects: list[DetectedObject]


class ObjectDetectionList(_Response):
    object: Literal["list"] = "list"
    model: str
    data: list[ObjectDetections]
    usage: Usage | None = None


class Face(_Response):
    score: float
    box: BoxOut
    landmarks: dict[str, Point] | None = Field(
        None, description="left_eye, right_eye, nose, mouth_left, mouth_right (as seen in the image)")
    embedding: list[float] | None = Field(
        None, description="POST /v1/faces/embeddings: the face's vector (the default model's: 128 numbers, and two "
                          "faces less than 0.6 apart, Euclidean, show one person)")


class FaceDetections(_Response):
    index: int
    width: int
    height: int
    faces: list[Face]


class FaceDetectionList(_Response):
    object: Literal["list"] = "list"
    model: str
    data: list[FaceDetections]
    usage: Usage | None = None


class LabelScore(_Response):
    label: str
    score: float


class TokenWeightOut(_Response):
    text: str
    start: int = Field(description="character offset of the token in the input")
    end: int
    weight: float = Field(description="in [-1, 1]: > 0 speaks for the label, < 0 against it")


class TextExplanationOut(_Response):
    label: str
    tokens: list[TokenWeightOut]


class ImageExplanationOut(_Response):
    label: str
    grid: list[list[float]] = Field(description="rows top to bottom of weights in [0, 1] (1: what mattered most) "
                                                "over the image as the model saw it (after its resize and crop)")
    overlay_png: str | None = Field(None, description="base64 PNG of the heatmap over that view (explain_overlay)")


class Classification(_Response):
    index: int
    labels: list[LabelScore]
    explanation: TextExplanationOut | ImageExplanationOut | None = None


class ClassificationList(_Response):
    object: Literal["list"] = "list"
    model: str
    data: list[Classification]
    usage: Usage | None = None


# -- named entities

class EntityRequest(_Request):
    model: str | None = None
    input: str | list[str] = Field(description="a text, or several; each non-empty")
    aggregation: Aggregation = Field(
        "simple", description="`simple`: one span per entity (B-/I- tokens merged); `none`: one row per token "
                              "inside an entity, labelled with its IOB tag (`B-PERSON`, `I-PERSON`)")

    @field_validator("input")
    @classmethod
    def _non_empty(cls, value: str | list[str]) -> str | list[str]:
        # Checked here rather than as min_length on each union member, so that the error names `input`.
        if any(not text for text in ([value] if isinstance(value, str) else value)):
            raise ValueError("an input is an empty string: send text to find entities in")
        return value

    @property
    def inputs(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class EntitySpan(_Response):
    text: str = Field(description="the input's characters from `start` to `end`: `input[start:end] == text`")
    label: str = Field(description="the entity type (`PERSON`, `GPE`...); with aggregation `none` its IOB tag")
    start: int = Field(description="offset of the first character, in Unicode code points (Python str indices)")
    end: int = Field(description="offset just past the last character")
    score: float | None = Field(
        description="the model's probability for the label (a span's mean over its tokens); null when the model "
                    "gives none: spaCy pipelines decide without probabilities")


class EntityResult(_Response):
    index: int
    entities: list[EntitySpan] = Field(description="in the order they occur in the input")


class EntityList(_Response):
    object: Literal["list"] = "list"
    model: str
    data: list[EntityResult]
    usage: Usage


# -- models and errors

# -- speech (OpenAI's /v1/audio/transcriptions and /v1/audio/translations)

AudioFormat = Literal["json", "text", "srt", "verbose_json", "vtt"]


class TranscriptionRequest(_Request):
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
    include: list[Literal[""]] = []


class TranslationRequest(_Request):
    """The fields of /v1/audio/translations (OpenAI's: no language, no timestamp granularities)."""

    model: str | None = None
    prompt: str | None = Field(None, max_length=1000)
    temperature: float = Field(0.0, ge=0, le=1)
    response_format: AudioFormat = "json"


class DurationUsage(_Response):
    """What a transcription used, as OpenAI reports it for whisper: seconds of audio."""

    type: Literal["duration"] = "duration"
    seconds: float


class TranscriptionWord(_Response):
    word: str
    start: float
    end: float


class TranscriptionSegment(_Response):
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


class Transcription(_Response):
    """response_format json."""

    text: str
    usage: DurationUsage


class TranscriptionVerbose(_Response):
    """response_format verbose_json: the text, its language (ISO 639-1 code), the audio's duration in
    seconds, its segments and, with timestamp_granularities word, its words."""

    task: Literal["transcribe", "translate"]
    language: str
    duration: float
    text: str
    segments: list[TranscriptionSegment]
    words: list[TranscriptionWord] | None = None
    usage: DurationUsage


class ModelInfo(_Response):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "maas"
    task: str
    endpoints: list[str]
    device: str | None
    dtype: str | None
    context_length: int | None = Field(None, description="tokens a request may use (prompt plus output)")
    max_characters: int | None = Field(
        None, description="characters one input may have, for models limited in characters (spaCy pipelines)")
    dimensions: int | None = Field(None, description="embedding size (embedding models)")
    labels: list[str] | None = Field(
        None, description="a classifier's own labels (GET /v1/models/{id} only: ImageNet has 1000)")
    languages: list[str] | None = Field(None, description="speech: the languages it transcribes (ISO 639-1)")
    translates: bool | None = Field(None, description="speech: whether it serves /v1/audio/translations")
    backend: Literal["local", "ray"] = Field(
        "local", description="local: in the server's own processes; ray: in Ray Serve replicas (docs/scaling.md)")
    replicas: ReplicaCount | None = Field(None, description="ray: its replicas running now, and its deployment's "
                                                            "target (autoscaling moves it)")
    ready: bool


class ReplicaCount(_Response):
    running: int
    target: int


class ModelList(_Response):
    object: Literal["list"] = "list"
    data: list[ModelInfo]


class Health(_Response):
    """GET /health: the process is alive."""

    status: Literal["ok"] = "ok"


class Readiness(_Response):
    """GET /ready: 200 with status `ready` once every model is loaded, else 503; each model's state.

    `unavailable`: something the models need besides themselves (the account store) cannot be used;
    `problems` says what.
    """

    status: Literal["ready", "not_ready", "draining", "unavailable"]
    # unavailable: a model on Ray with no replica running now (or its cluster unreachable)
    models: dict[str, Literal["ready", "loading", "failed", "unavailable"]]
    problems: list[str] = []


class ErrorDetail(_Response):
    type: str
    message: str
    param: str | None
    code: str | None


class ErrorResponse(_Response):
    error: ErrorDetail


def dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")
