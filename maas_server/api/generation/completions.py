"""POST /v1/completions and /v1/chat/completions: OpenAI shapes, streaming as server-sent events."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from typing import Any

from flask import Response, request

from ...errors import APIError, error_body
from ...models.contract import InvalidInput, ItemFailed
from ...models.generation_io import GENERATE, Choice, GenerationRequest, GenerationResult, TextDelta, TokenLogprob
from ...ops.steptimes import timed
from ...runtime.handles import EventStream, Finished, Handle, Progress
from ...runtime.registry import ModelEntry
from ...runtime.runner import ModelUnavailable
from .._common import (
    CLIENT_POLL_S,
    client_gone,
    give_up_on_client,
    new_id,
    note_served_by,
    now,
    parse_json,
    resolve_model,
    state,
    stream,
    submit,
    wait_all,
)
from ..accounting import zero_retention
from ..endpoints import Family
from ..metering import report_usage
from ..wire import Usage, dump
from . import tools
from .schemas import (
    AssistantMessage,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatDelta,
    ChoiceLogprobs,
    Completion,
    CompletionChoice,
    CompletionLogprobs,
    CompletionRequest,
    Sampling,
    TokenLogprobOut,
    TopLogprob,
)
from .structured import admitted_schema

family = Family("generation", __name__)

_CHAT = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Name a colour."}]


@family.post("/v1/completions", "Text completion (OpenAI shape); `stream: true` answers with server-sent events",
               request=CompletionRequest, response=Completion, events=Completion, serves=(GENERATE,),
               examples={"whole": {"prompt": "Once upon a time", "max_tokens": 8, "temperature": 0},
                         "streamed": {"prompt": ["Once upon a time", "Hello"], "max_tokens": 8, "n": 2,
                                      "logprobs": 2, "stream": True, "stream_options": {"include_usage": True}}})
def completions() -> Any:
    body = parse_json(CompletionRequest)
    entry = resolve_model(body.model)
    _check_limits(entry, body, body.max_tokens, len(body.prompts))
    requests = [_generation_request(body, body.max_tokens, body.logprobs, prompt=p) for p in body.prompts]
    shaper = _CompletionShaper(new_id("cmpl"), entry.config.name, body.n)
    return respond(entry, requests, shaper, body.stream, _include_usage(body))


@family.post("/v1/chat/completions", "Chat completion (OpenAI shape); `stream: true` answers with server-sent "
               "events", request=ChatCompletionRequest, response=ChatCompletion, events=ChatCompletionChunk,
               serves=(GENERATE,),
               examples={"whole": {"messages": _CHAT, "max_tokens": 8, "logprobs": True, "top_logprobs": 2},
                         "streamed": {"messages": _CHAT, "max_tokens": 8, "seed": 7, "stream": True,
                                      "logprobs": True, "top_logprobs": 2,
                                      "stream_options": {"include_usage": True}}})
def chat_completions() -> Any:
    body = parse_json(ChatCompletionRequest)
    if body.store and zero_retention():  # nothing is stored, but a zero-retention key asking for it is told so
        raise APIError("this API key is zero-retention: nothing its requests carry or return may be stored; "
                       "send store: false or leave it out", param="store", code="store_not_allowed")
    return answer_chat(body)


def answer_chat(body: ChatCompletionRequest) -> Any:
    """The chat completion for `body`: the whole answer, or its stream of chunks."""
    entry, generation = chat_generation(body)
    shaper = _ChatShaper(new_id("chatcmpl"), entry.config.name, body.n, tool_names=tool_names(generation),
                         forced=generation.tools_required)
    return respond(entry, [generation], shaper, body.stream, _include_usage(body))


def _include_usage(body: Sampling) -> bool:
    return bool(body.stream_options and body.stream_options.include_usage)


def chat_generation(body: ChatCompletionRequest) -> tuple[ModelEntry, GenerationRequest]:
    """The model and the model's request for a chat body (also what /v1/responses is turned into)."""
    entry = resolve_model(body.model)
    _check_limits(entry, body, body.token_limit, 1)
    top = (body.top_logprobs or 0) if body.logprobs else None
    generation = _generation_request(body, body.token_limit, top, messages=[m.as_dict() for m in body.messages],
                                     tools=tools.offered(body), tools_required=tools.required(body))
    if generation.tools_required:
        generation.json_schema = admitted_schema(tools.calls_schema(body), "tools")  # calls follow the grammar
        generation.json_schema_field = "tools"  # a parameters schema it cannot enforce is the tools' fault
    return entry, generation


def tool_names(generation: GenerationRequest) -> list[str]:
    """The offered functions' names, in the order the request gave them."""
    return [tool["function"]["name"] for tool in generation.tools or []]


def _check_limits(entry: ModelEntry, body: Sampling, max_tokens: int | None, prompts: int) -> None:
    config = state().config
    check_max_tokens(max_tokens, "max_tokens")
    if body.n > config.max_n:
        raise APIError(f"n is {body.n}, above this server's limit of {config.max_n}", status=400, param="n",
                       code="n_too_large")
    if prompts == 0 or prompts > config.max_inputs:
        raise APIError(f"send between 1 and {config.max_inputs} prompts", status=400, param="prompt",
                       code="too_many_inputs")
    # One call's share of the model's decoding: many prompts x n x max_tokens held every other
    # caller's requests at 503 for minutes.
    asked = prompts * body.n * (max_tokens or entry.config.default_max_tokens)
    if asked > config.max_request_tokens:
        raise APIError(f"this call asks for up to {asked} generated tokens ({prompts} prompt(s) x n {body.n} x "
                       f"max_tokens {max_tokens or entry.config.default_max_tokens}), above this server's "
                       f"max_request_tokens of {config.max_request_tokens}; split it or lower max_tokens or n",
                       status=400, param="max_tokens", code="request_too_large")


def check_max_tokens(max_tokens: int | None, param: str) -> None:
    """400 when a request asks for more tokens than this server's max_tokens."""
    limit = state().config.max_tokens
    if max_tokens is not None and max_tokens > limit:
        raise APIError(f"{param} is {max_tokens}, above this server's limit of {limit}",
                       status=400, param=param, code="max_tokens_too_large")


def _generation_request(body: Sampling, max_tokens: int | None, logprobs: int | None,
                        **prompt: Any) -> GenerationRequest:
    """The model's request for one prompt (`prompt=`, or `messages=` with their `tools=`)."""
    text = body.response_format.schema_text() if body.response_format is not None else None
    schema = admitted_schema(text, "response_format") if text is not None else None
    return GenerationRequest(max_tokens=max_tokens, temperature=body.temperature, top_p=body.top_p, n=body.n,
                             stop=tuple(body.stops), seed=body.seed, logprobs=logprobs, json_schema=schema, **prompt)


def respond(entry: ModelEntry, requests: list[GenerationRequest], shaper: Shaper, streamed: bool,
            include_usage: bool = False) -> Any:
    """Generate `requests` on `entry` and answer in `shaper`'s shapes: whole, or as server-sent events."""
    if not streamed or shaper.buffers_streams:
        results = _wait_billing_what_was_done(entry, submit(entry, GENERATE, requests))
        report_usage(entry.config.name, _usage(results))
        if streamed:  # an answer that may be tool calls is known only at its end: sent as one piece
            return Response(_sse(shaper.buffered_chunks(results, include_usage)), mimetype="text/event-stream",
                            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        return shaper.full(results)
    for generation in requests:
        generation.stream = True
    tokens = _TokenStream(stream(entry, GENERATE, requests))
    tokens.wait_for_first_event()  # errors before the first token become plain JSON errors
    note_served_by(tokens.events.handles)
    report_usage(entry.config.name, tokens.usage)  # settled when the stream ends, usage chunk or not
    return Response(_sse(tokens.chunks(shaper, include_usage), shaper.ends_with_done), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _wait_billing_what_was_done(entry: ModelEntry, handles: list[Handle[GenerationResult]]) -> list[GenerationResult]:
    """Every result; when the call ends early (its client left: 499), it is billed for the prompts
    that reached the model and the tokens generated until then, as a stream that is left is."""
    try:
        return wait_all(handles)
    except BaseException:
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        settled = (_settled_result(handle, deadline) for handle in handles)
        report_usage(entry.config.name, _usage([r for r in settled if r is not None]))
        raise


def _sse(chunks: Iterator[dict[str, Any]], done: bool = True) -> Iterator[str]:
    for chunk in chunks:
        with timed("wire.sse_encode"):
            line = f"data: {json.dumps(chunk, separators=(',', ':'))}\n\n"
        yield line
    if done:
        yield "data: [DONE]\n\n"


class _TokenStream:
    """Turns the runner's events for a streamed call (one item per prompt) into response chunks.

    Each prompt's text events, then its outcome, arrive in order on one queue. Closing the
    response (the client left) cancels every prompt: queued ones never start, running ones leave
    their decode batch at the next step.
    """

    def __init__(self, events: EventStream[GenerationResult]) -> None:
        self.events = events
        self.prompts = len(events.handles)
        self.first: Progress | Finished | None = None

    def wait_for_first_event(self) -> None:
        self.first = self._next_event_while_client_stays()
        if isinstance(self.first, Finished) and self.first.error is not None:
            self.events.cancel()
            raise self.first.error

    def _next_event_while_client_stays(self) -> Progress | Finished:
        # Before the first token a request may wait in the queue: a client that leaves meanwhile
        # must not cost a prefill. After it, a failed write tells us (see chunks()).
        sock = request.environ.get("gunicorn.socket")
        while True:
            event = self.events.next_event(timeout=CLIENT_POLL_S if sock is not None else None)
            if event is not None:
                return event
            if client_gone(sock):
                give_up_on_client(self.events.handles)

    def usage(self) -> Usage:
        """What the stream cost: every prompt that reached the model, and every token generated.

        A client that left mid-stream is billed for what was generated until then: its rows leave
        at the next decode step, which resolves their handles with the partial results.
        """
        deadline = time.monotonic() + SETTLE_TIMEOUT_S  # one bound for all prompts, not one each
        settled = (_settled_result(handle, deadline) for handle in self.events.handles)
        return _usage([r for r in settled if r is not None])

    def chunks(self, shaper: Shaper, include_usage: bool) -> Iterator[dict[str, Any]]:
        results: list[GenerationResult | None] = [None] * self.prompts
        pending = self.prompts
        try:
            yield from shaper.start_chunks(self.prompts)
            event = self.first
            while event is not None:
                if isinstance(event, Progress):
                    delta: TextDelta = event.event
                    yield from shaper.text_chunks(event.index * shaper.n + delta.choice, delta.text, delta.tokens)
                else:
                    pending -= 1
                    if event.error is not None:
                        yield shaper.error_chunk(event.error)
                        return
                    results[event.index] = event.result
                    yield from shaper.finish_chunks(event.index, event.result)
                event = self.events.next_event() if pending else None
            if include_usage:
                yield shaper.usage_chunk([r for r in results if r is not None])
        finally:
            self.events.cancel()  # a no-op when finished; stops generation when the client left


SETTLE_TIMEOUT_S = 10.0  # a cancelled row leaves at the next decode step; this only bounds a stuck model


def _settled_result(handle: Handle[GenerationResult], deadline: float) -> GenerationResult | None:
    """The result once the runner has settled it; None when it never ran or failed."""
    if handle.cancelled():
        return None
    try:
        return handle.result(timeout=max(0.0, deadline - time.monotonic()))
    except Exception:  # noqa: BLE001 - failed, cancelled meanwhile, or stuck: nothing to bill
        return None


def stream_error(exc: BaseException) -> dict[str, Any]:
    """The event that ends a stream when its generation failed after the first token: the error envelope."""
    if isinstance(exc, InvalidInput):
        return error_body(400, str(exc), exc.param, exc.code)
    if isinstance(exc, ModelUnavailable):  # e.g. the replica generating it was lost mid-stream
        return error_body(503, str(exc), None, "model_unavailable")
    if isinstance(exc, ItemFailed):
        return error_body(500, str(exc), None, "model_error")
    return error_body(500, "generation failed; the server log has the details", None, "internal_error")


def _usage(results: list[GenerationResult]) -> Usage:
    prompt = sum(r.prompt_tokens for r in results)
    completion = sum(c.completion_tokens for r in results for c in r.choices)
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


class Shaper:
    """Turns generation results into one API's response objects (completions, chat, TGI's)."""

    buffers_streams = False
    ends_with_done = True  # OpenAI's streams end with `data: [DONE]`

    def error_chunk(self, exc: BaseException) -> dict[str, Any]:
        return stream_error(exc)

    def __init__(self, response_id: str, model: str, n: int) -> None:
        self.id, self.model, self.n, self.created = response_id, model, n, now()

    def buffered_chunks(self, results: list[GenerationResult], include_usage: bool) -> Iterator[dict[str, Any]]:
        raise NotImplementedError

    def choices(self, results: list[GenerationResult]) -> Iterator[tuple[int, Choice]]:
        for prompt_index, result in enumerate(results):
            for i, choice in enumerate(result.choices):
                yield prompt_index * self.n + i, choice

    def start_chunks(self, prompts: int) -> Iterator[dict[str, Any]]:
        return iter(())

    def finish_chunks(self, prompt_index: int, result: GenerationResult) -> Iterator[dict[str, Any]]:
        for i, choice in enumerate(result.choices):
            yield self.chunk([self.finish_choice(prompt_index * self.n + i, choice)])

    def usage_chunk(self, results: list[GenerationResult]) -> dict[str, Any]:
        return self.chunk([], usage=_usage(results))

    def full(self, results: list[GenerationResult]) -> Any:
        raise NotImplementedError

    def text_chunks(self, index: int, text: str, tokens: Sequence[TokenLogprob]) -> Iterator[dict[str, Any]]:
        yield self.text_chunk(index, text, tokens)

    def text_chunk(self, index: int, text: str, tokens: Sequence[TokenLogprob]) -> dict[str, Any]:
        raise NotImplementedError

    def finish_choice(self, index: int, choice: Choice) -> Any:
        raise NotImplementedError

    def chunk(self, choices: list[Any], usage: Usage | None = None) -> dict[str, Any]:
        raise NotImplementedError


class _CompletionShaper(Shaper):
    def full(self, results: list[GenerationResult]) -> dict[str, Any]:
        choices = [CompletionChoice(index=i, text=c.text, finish_reason=c.finish_reason,
                                      logprobs=_completion_logprobs(c.tokens) if c.tokens else None)
                   for i, c in self.choices(results)]
        return dump(Completion(id=self.id, created=self.created, model=self.model, choices=choices,
                                   usage=_usage(results)))

    def text_chunk(self, index: int, text: str, tokens: Sequence[TokenLogprob]) -> dict[str, Any]:
        logprobs = _completion_logprobs(tokens) if tokens else None
        return self.chunk([CompletionChoice(index=index, text=text, logprobs=logprobs)])

    def finish_choice(self, index: int, choice: Choice) -> CompletionChoice:
        return CompletionChoice(index=index, text="", finish_reason=choice.finish_reason)

    def chunk(self, choices: list[Any], usage: Usage | None = None) -> dict[str, Any]:
        return dump(Completion(id=self.id, created=self.created, model=self.model, choices=choices, usage=usage))


class _ChatShaper(Shaper):
    def __init__(self, response_id: str, model: str, n: int, tool_names: list[str] | None = None,
                 forced: bool = False) -> None:
        super().__init__(response_id, model, n)
        self.tool_names = tool_names or []
        self.forced = forced  # tool_choice "required" or named: the answer is calls, even when cut short
        self.buffers_streams = bool(self.tool_names)

    def full(self, results: list[GenerationResult]) -> dict[str, Any]:
        choices = [self._choice(i, c) for i, c in self.choices(results)]
        return dump(ChatCompletion(id=self.id, created=self.created, model=self.model, choices=choices,
                                       usage=_usage(results)))

    def _choice(self, index: int, choice: Choice) -> ChatChoice:
        logprobs = _chat_logprobs(choice.tokens) if choice.tokens else None
        if self.forced:
            finish = "tool_calls" if choice.finish_reason == "stop" else choice.finish_reason
            return ChatChoice(index=index, message=AssistantMessage(
                content=None, tool_calls=tools.read_forced_calls(choice.text, self.tool_names)),
                finish_reason=finish, logprobs=logprobs)
        calls = tools.read_calls(choice.text, set(self.tool_names)) if self.tool_names else None
        if calls and choice.finish_reason == "stop":
            return ChatChoice(index=index, message=AssistantMessage(content=None, tool_calls=calls),
                                finish_reason="tool_calls", logprobs=logprobs)
        return ChatChoice(index=index, message=AssistantMessage(content=choice.text),
                            finish_reason=choice.finish_reason, logprobs=logprobs)

    def buffered_chunks(self, results: list[GenerationResult], include_usage: bool) -> Iterator[dict[str, Any]]:
        """A whole answer as OpenAI's chunks: the role, the text or the calls (arguments whole), the finish."""
        for index, choice in self.choices(results):
            answer = self._choice(index, choice)
            calls = [call.model_copy(update={"index": i}) for i, call in enumerate(answer.message.tool_calls or [])]
            delta = ChatDelta(role="assistant", content=answer.message.content, tool_calls=calls or None)
            yield self.chunk([ChatChunkChoice(index=index, delta=delta, logprobs=answer.logprobs)])
            yield self.chunk([ChatChunkChoice(index=index, delta=ChatDelta(),
                                                finish_reason=answer.finish_reason)])
        if include_usage:
            yield self.usage_chunk(results)

    def start_chunks(self, prompts: int) -> Iterator[dict[str, Any]]:
        for index in range(prompts * self.n):
            yield self.chunk([ChatChunkChoice(index=index, delta=ChatDelta(role="assistant", content=""))])

    def text_chunk(self, index: int, text: str, tokens: Sequence[TokenLogprob]) -> dict[str, Any]:
        logprobs = _chat_logprobs(tokens) if tokens else None
        return self.chunk([ChatChunkChoice(index=index, delta=ChatDelta(content=text), logprobs=logprobs)])

    def finish_choice(self, index: int, choice: Choice) -> ChatChunkChoice:
        return ChatChunkChoice(index=index, delta=ChatDelta(), finish_reason=choice.finish_reason)

    def chunk(self, choices: list[Any], usage: Usage | None = None) -> dict[str, Any]:
        return dump(ChatCompletionChunk(id=self.id, created=self.created, model=self.model, choices=choices,
                                            usage=usage))


def _completion_logprobs(tokens: Sequence[TokenLogprob]) -> CompletionLogprobs:
    offsets, position = [], 0
    for token in tokens:
        offsets.append(position)
        position += len(token.token)
    return CompletionLogprobs(tokens=[t.token for t in tokens], token_logprobs=[t.logprob for t in tokens],
                                top_logprobs=[dict(t.top) for t in tokens], text_offset=offsets)


def _chat_logprobs(tokens: Sequence[TokenLogprob]) -> ChoiceLogprobs:
    return ChoiceLogprobs(content=[
        TokenLogprobOut(token=t.token, logprob=t.logprob, bytes=list(t.token.encode()),
                          top_logprobs=[TopLogprob(token=a, logprob=lp, bytes=list(a.encode())) for a, lp in t.top])
        for t in tokens
    ])
