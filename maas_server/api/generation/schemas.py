"""The request and response models of text generation: /v1/completions, /v1/chat/completions and /v1/responses."""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal

from pydantic import Field, PlainSerializer, ValidationInfo, field_validator, model_serializer, model_validator

from ...models.generation_io import FinishReason
from ..wire import JsonText, OpenAIRequestBody, RequestBody, ResponseBody, Usage

# What a token the model cannot choose (masked by a grammar, or underflowed) scores: -inf is not JSON, and
# OpenAI and vLLM write -9999.0 for it.
LOGPROB_FLOOR = -9999.0


def _finite_logprob(value: float) -> float:
    return value if math.isfinite(value) else LOGPROB_FLOOR


Logprob = Annotated[float, PlainSerializer(_finite_logprob, return_type=float)]


class StreamOptions(RequestBody):
    include_usage: bool = False


# A JSON schema is compiled into a grammar between decode steps, while every stream of the model
# waits: 100 KB compile in ~25 ms here; a 6 MB one took 1.2 s before the engine refused it.
MAX_SCHEMA_BYTES = 100_000


def small_schema(schema: Any, what: str) -> None:
    if len(json.dumps(schema)) > MAX_SCHEMA_BYTES:
        raise ValueError(f"{what} is over this server's limit of {MAX_SCHEMA_BYTES} bytes of JSON schema")


class JsonSchemaFormat(OpenAIRequestBody):
    """`response_format.json_schema`: the schema the output must follow (OpenAI's shape)."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    schema_: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None  # output always follows the schema here, strict or not
    description: str | None = None


class ResponseFormat(OpenAIRequestBody):
    """Plain text, any JSON object, or JSON following a schema; enforced token by token."""

    type: Literal["text", "json_object", "json_schema", "json"]  # "json": TGI's older name for json_object
    json_schema: JsonSchemaFormat | None = None
    value: dict[str, Any] | None = None  # TGI's form: json_object with its schema here (huggingface_hub sends it)

    @model_validator(mode="after")
    def _schema_with_its_type(self) -> ResponseFormat:
        small_schema([self.json_schema.schema_ if self.json_schema else None, self.value], "the schema")
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


class Sampling(OpenAIRequestBody):
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
    def _neutral_unsupported(self) -> Sampling:
        for name in ("frequency_penalty", "presence_penalty"):
            if getattr(self, name) not in (None, 0, 0.0):
                raise ValueError(f"{name} is not supported by this server; omit it or send 0")
        if self.logit_bias:
            raise ValueError("logit_bias is not supported by this server; omit it")
        return self

    @property
    def stops(self) -> list[str]:
        return self.stop if isinstance(self.stop, list) else []


class CompletionRequest(Sampling):
    prompt: str | list[str]
    max_tokens: int | None = Field(16, ge=1)
    logprobs: int | None = Field(None, ge=0, le=5)
    echo: Literal[False] = False
    best_of: Literal[1] | None = None
    suffix: None = None

    @property
    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


class CompletionLogprobs(ResponseBody):
    tokens: list[str]
    token_logprobs: list[Logprob]
    top_logprobs: list[dict[str, Logprob]] | None
    text_offset: list[int]


class CompletionChoice(ResponseBody):
    index: int
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: FinishReason | None = None


class Completion(ResponseBody):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


class TextPart(RequestBody):
    type: Literal["text"]
    text: str


class FunctionCall(OpenAIRequestBody):
    name: str = Field(min_length=1)
    arguments: JsonText  # JSON text, as OpenAI sends it


class ToolCallIn(OpenAIRequestBody):
    """A call an earlier assistant turn made, sent back with the conversation."""

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(OpenAIRequestBody):
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


class FunctionSpec(OpenAIRequestBody):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None  # a JSON schema; none: the function takes no arguments
    strict: bool | None = None  # arguments always follow `parameters` when the server constrains them


class ToolSpec(OpenAIRequestBody):
    type: Literal["function"]
    function: FunctionSpec


class NamedFunction(OpenAIRequestBody):
    name: str


class NamedToolChoice(OpenAIRequestBody):
    type: Literal["function"]
    function: NamedFunction


class ChatCompletionRequest(Sampling):
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
        small_schema([tool.function.parameters for tool in tools], "the tools' parameters")
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


class TopLogprob(ResponseBody):
    token: str
    logprob: Logprob
    bytes: list[int] | None


class TokenLogprobOut(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChoiceLogprobs(ResponseBody):
    content: list[TokenLogprobOut] | None


class FunctionCallOut(ResponseBody):
    name: str
    arguments: str  # JSON text, as OpenAI gives it


class ToolCallOut(ResponseBody):
    index: int | None = None  # in stream deltas only
    id: str
    type: Literal["function"] = "function"
    function: FunctionCallOut

    @model_serializer(mode="wrap")
    def _drop_unset(self, handler: Any) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


class AssistantMessage(ResponseBody):
    role: Literal["assistant"] = "assistant"
    content: str | None
    tool_calls: list[ToolCallOut] | None = None

    @model_serializer(mode="wrap")
    def _drop_unset(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        if data.get("tool_calls") is None:
            data.pop("tool_calls", None)
        return data  # type: ignore[no-any-return]


class ChatChoice(ResponseBody):
    index: int
    message: AssistantMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: FinishReason | Literal["tool_calls"] | None


class ChatCompletion(ResponseBody):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class ChatDelta(ResponseBody):
    """Only the fields that changed, as OpenAI sends them (absent, not null)."""

    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[ToolCallOut] | None = None

    @model_serializer(mode="wrap")
    def _drop_unset(self, handler: Any) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


class ChatChunkChoice(ResponseBody):
    index: int
    delta: ChatDelta
    logprobs: ChoiceLogprobs | None = None
    finish_reason: FinishReason | Literal["tool_calls"] | None = None


class ChatCompletionChunk(ResponseBody):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None


class InputText(OpenAIRequestBody):
    type: Literal["input_text", "output_text", "text"]
    text: str
    annotations: list[Any] | None = None  # on output_text sent back; ignored


class InputMessage(OpenAIRequestBody):
    type: Literal["message"] | None = None
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[InputText]
    id: str | None = None
    status: str | None = None

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class FunctionCallItem(OpenAIRequestBody):
    """A call the model made in an earlier turn, sent back with the conversation."""

    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: JsonText
    id: str | None = None
    status: str | None = None


class FunctionCallOutputItem(OpenAIRequestBody):
    type: Literal["function_call_output"]
    call_id: str
    output: str
    id: str | None = None
    status: str | None = None


class TextFormat(OpenAIRequestBody):
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None
    description: str | None = None


class TextOptions(OpenAIRequestBody):
    format: TextFormat | None = None
    verbosity: str | None = None  # accepted and ignored


class ResponseTool(OpenAIRequestBody):
    type: Literal["function"]
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ResponseToolChoice(OpenAIRequestBody):
    type: Literal["function"]
    name: str


class ResponsesRequest(OpenAIRequestBody):
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


class ResponseObject(ResponseBody):
    """A Responses API response (the fields every answer carries; the rest as OpenAI documents them)."""

    id: str
    object: Literal["response"] = "response"
    created_at: int
    model: str
    status: Literal["completed", "incomplete", "in_progress"]
    output: list[dict[str, Any]]  # {"type": "message", "content": [{"type": "output_text", "text"}]} or function_call
    usage: dict[str, Any] | None = None


class ResponseEvent(ResponseBody):
    """One server-sent event of a streamed response: `type` says which (response.output_text.delta...)."""

    type: str
    sequence_number: int
