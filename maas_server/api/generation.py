"""POST /v1/completions and /v1/chat/completions: OpenAI shapes, streaming as server-sent events."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

from flask import Blueprint, Response, request

from ..errors import APIError, error_body
from ..models.base import Choice, GenerationRequest, GenerationResult, InvalidInput, ItemFailed, TokenLogprob
from ..runtime.registry import ModelEntry
from . import schemas as s
from ._common import (CLIENT_POLL_S, client_gone, give_up_on_client, new_id, now, parse_json, resolve_model, state,
                      submit, wait_all)
from .metering import report_usage

bp = Blueprint("generation", __name__)


@bp.post("/v1/completions")
def completions() -> Any:
    body = parse_json(s.CompletionRequest)
    entry = resolve_model("/v1/completions", body.model)
    _check_limits(body, body.max_tokens, len(body.prompts))
    requests = [_generation_request(body, body.max_tokens, body.logprobs, prompt=p) for p in body.prompts]
    shaper = _CompletionShaper(new_id("cmpl"), entry.config.name, body.n)
    return _respond(entry, requests, shaper, body)


@bp.post("/v1/chat/completions")
def chat_completions() -> Any:
    body = parse_json(s.ChatCompletionRequest)
    entry = resolve_model("/v1/chat/completions", body.model)
    _check_limits(body, body.token_limit, 1)
    top = (body.top_logprobs or 0) if body.logprobs else None
    messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in body.messages]
    requests = [_generation_request(body, body.token_limit, top, messages=messages)]
    shaper = _ChatShaper(new_id("chatcmpl"), entry.config.name, body.n)
    return _respond(entry, requests, shaper, body)


def _check_limits(body: s._Sampling, max_tokens: int | None, prompts: int) -> None:
    config = state().config
    if max_tokens is not None and max_tokens > config.max_tokens:
        raise APIError(f"max_tokens is {max_tokens}, above this server's limit of {config.max_tokens}",
                       status=422, param="max_tokens", code="max_tokens_too_large")
    if body.n > config.max_n:
        raise APIError(f"n is {body.n}, above this server's limit of {config.max_n}", status=422, param="n",
                       code="n_too_large")
    if prompts == 0 or prompts > config.max_inputs:
        raise APIError(f"send between 1 and {config.max_inputs} prompts", status=422, param="prompt",
                       code="too_many_inputs")


def _generation_request(body: s._Sampling, max_tokens: int | None, logprobs: int | None,
                        **prompt: Any) -> GenerationRequest:
    return GenerationRequest(max_tokens=max_tokens, temperature=body.temperature, top_p=body.top_p, n=body.n,
                             stop=tuple(body.stops), seed=body.seed, logprobs=logprobs, **prompt)


def _respond(entry: ModelEntry, requests: list[GenerationRequest], shaper: _Shaper, body: s._Sampling) -> Any:
    assert entry.runner is not None
    if not body.stream:
        gone = threading.Event()
        for generation in requests:
            generation.is_cancelled = gone.is_set  # checked every decode step
        results = wait_all(submit(entry, "generate", requests), on_client_gone=gone.set)
        report_usage(entry.config.name, _usage(results))
        return shaper.full(results)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    stream = _TokenStream(requests)
    stream.futures = submit(entry, "generate", requests)
    stream.wait_for_first_event()  # errors before the first token become plain JSON errors
    report_usage(entry.config.name, stream.usage)  # settled when the stream ends, usage chunk or not
    return Response(_sse(stream.events(shaper, include_usage)), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _sse(chunks: Iterator[dict[str, Any]]) -> Iterator[str]:
    for chunk in chunks:
        yield f"data: {json.dumps(chunk, separators=(',', ':'))}\n\n"
    yield "data: [DONE]\n\n"


class _TokenStream:
    """Carries text from the runner thread to the response generator, one queue for all prompts.

    Each prompt's text events, then a done marker for its future, arrive in order because the
    runner thread emits both. Closing the response (client gone) cancels generation.
    """

    def __init__(self, requests: list[GenerationRequest]) -> None:
        self.events_queue: queue.Queue[tuple[str, int, Any]] = queue.Queue()
        self.cancelled = threading.Event()
        self.futures: list[Future[GenerationResult]] = []
        self.first: tuple[str, int, Any] | None = None
        for prompt_index, generation in enumerate(requests):
            generation.on_text = self._on_text(prompt_index * generation.n)
            generation.is_cancelled = self.cancelled.is_set

    def _on_text(self, offset: int) -> Callable[[int, str, list[TokenLogprob]], None]:
        return lambda index, text, tokens: self.events_queue.put(("text", offset + index, (text, tokens)))

    def _on_done(self, prompt_index: int) -> Callable[[Future[GenerationResult]], None]:
        return lambda future: self.events_queue.put(("done", prompt_index, future))

    def wait_for_first_event(self) -> None:
        for prompt_index, future in enumerate(self.futures):
            future.add_done_callback(self._on_done(prompt_index))
        self.first = self._next_event_while_client_stays()
        kind, _, payload = self.first
        if kind == "done" and payload.exception() is not None:
            self.cancelled.set()
            raise payload.exception()

    def _next_event_while_client_stays(self) -> tuple[str, int, Any]:
        # Before the first token a request may wait in the queue: a client that leaves meanwhile
        # must not cost a prefill. After it, a failed write tells us (see events()).
        sock = request.environ.get("gunicorn.socket")
        while True:
            try:
                return self.events_queue.get(timeout=CLIENT_POLL_S if sock is not None else None)
            except queue.Empty:
                if client_gone(sock):
                    give_up_on_client(self.futures, self.cancelled.set)

    def usage(self) -> s.Usage:
        """What the stream cost: every prompt that reached the model, and every token generated.

        A client that left mid-stream is billed for what was generated until then: its rows stop
        at the next decode step, which resolves their futures with the partial results.
        """
        deadline = time.monotonic() + SETTLE_TIMEOUT_S  # one bound for all prompts, not one each
        settled = (_settled_result(future, deadline) for future in self.futures)
        return _usage([r for r in settled if r is not None])

    def events(self, shaper: _Shaper, include_usage: bool) -> Iterator[dict[str, Any]]:
        results: list[GenerationResult | None] = [None] * len(self.futures)
        pending = len(self.futures)
        try:
            yield from shaper.start_chunks(len(self.futures))
            event = self.first
            while event is not None:
                kind, index, payload = event
                if kind == "text":
                    yield shaper.text_chunk(index, *payload)
                else:
                    pending -= 1
                    if payload.exception() is not None:
                        yield _stream_error(payload.exception())
                        return
                    results[index] = payload.result()
                    yield from shaper.finish_chunks(index, payload.result())
                event = self.events_queue.get() if pending else None
            if include_usage:
                yield shaper.usage_chunk([r for r in results if r is not None])
        finally:
            self.cancelled.set()  # no-op when finished; stops generation when the client left
            for future in self.futures:
                future.cancel()  # a prompt still queued gets no compute (one running is not affected)


SETTLE_TIMEOUT_S = 10.0  # a cancelled row leaves at the next decode step; this only bounds a stuck model


def _settled_result(future: Future[GenerationResult], deadline: float) -> GenerationResult | None:
    """The result once the runner has settled it; None when it never ran or failed."""
    if future.cancelled():
        return None
    try:
        return future.result(timeout=max(0.0, deadline - time.monotonic()))
    except Exception:  # noqa: BLE001 - failed, cancelled meanwhile, or stuck: nothing to bill
        return None


def _stream_error(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, InvalidInput):
        return error_body(400, str(exc), exc.param, exc.code)
    if isinstance(exc, ItemFailed):
        return error_body(500, str(exc), None, "model_error")
    return error_body(500, "generation failed; the server log has the details", None, "internal_error")


def _usage(results: list[GenerationResult]) -> s.Usage:
    prompt = sum(r.prompt_tokens for r in results)
    completion = sum(c.completion_tokens for r in results for c in r.choices)
    return s.Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


class _Shaper:
    """Turns generation results into one API's response objects (completions or chat)."""

    def __init__(self, response_id: str, model: str, n: int) -> None:
        self.id, self.model, self.n, self.created = response_id, model, n, now()

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

    def full(self, results: list[GenerationResult]) -> dict[str, Any]:
        raise NotImplementedError

    def text_chunk(self, index: int, text: str, tokens: list[TokenLogprob]) -> dict[str, Any]:
        raise NotImplementedError

    def finish_choice(self, index: int, choice: Choice) -> Any:
        raise NotImplementedError

    def chunk(self, choices: list[Any], usage: s.Usage | None = None) -> dict[str, Any]:
        raise NotImplementedError


class _CompletionShaper(_Shaper):
    def full(self, results: list[GenerationResult]) -> dict[str, Any]:
        choices = [s.CompletionChoice(index=i, text=c.text, finish_reason=c.finish_reason,
                                      logprobs=_completion_logprobs(c.tokens) if c.tokens else None)
                   for i, c in self.choices(results)]
        return s.dump(s.Completion(id=self.id, created=self.created, model=self.model, choices=choices,
                                   usage=_usage(results)))

    def text_chunk(self, index: int, text: str, tokens: list[TokenLogprob]) -> dict[str, Any]:
        logprobs = _completion_logprobs(tokens) if tokens else None
        return self.chunk([s.CompletionChoice(index=index, text=text, logprobs=logprobs)])

    def finish_choice(self, index: int, choice: Choice) -> s.CompletionChoice:
        return s.CompletionChoice(index=index, text="", finish_reason=choice.finish_reason)

    def chunk(self, choices: list[Any], usage: s.Usage | None = None) -> dict[str, Any]:
        return s.dump(s.Completion(id=self.id, created=self.created, model=self.model, choices=choices, usage=usage))


class _ChatShaper(_Shaper):
    def full(self, results: list[GenerationResult]) -> dict[str, Any]:
        choices = [s.ChatChoice(index=i, message=s.AssistantMessage(content=c.text), finish_reason=c.finish_reason,
                                logprobs=_chat_logprobs(c.tokens) if c.tokens else None)
                   for i, c in self.choices(results)]
        return s.dump(s.ChatCompletion(id=self.id, created=self.created, model=self.model, choices=choices,
                                       usage=_usage(results)))

    def start_chunks(self, prompts: int) -> Iterator[dict[str, Any]]:
        for index in range(prompts * self.n):
            yield self.chunk([s.ChatChunkChoice(index=index, delta=s.ChatDelta(role="assistant", content=""))])

    def text_chunk(self, index: int, text: str, tokens: list[TokenLogprob]) -> dict[str, Any]:
        logprobs = _chat_logprobs(tokens) if tokens else None
        return self.chunk([s.ChatChunkChoice(index=index, delta=s.ChatDelta(content=text), logprobs=logprobs)])

    def finish_choice(self, index: int, choice: Choice) -> s.ChatChunkChoice:
        return s.ChatChunkChoice(index=index, delta=s.ChatDelta(), finish_reason=choice.finish_reason)

    def chunk(self, choices: list[Any], usage: s.Usage | None = None) -> dict[str, Any]:
        return s.dump(s.ChatCompletionChunk(id=self.id, created=self.created, model=self.model, choices=choices,
                                            usage=usage))


def _completion_logprobs(tokens: list[TokenLogprob]) -> s.CompletionLogprobs:
    offsets, position = [], 0
    for token in tokens:
        offsets.append(position)
        position += len(token.token)
    return s.CompletionLogprobs(tokens=[t.token for t in tokens], token_logprobs=[t.logprob for t in tokens],
                                top_logprobs=[dict(t.top) for t in tokens], text_offset=offsets)


def _chat_logprobs(tokens: list[TokenLogprob]) -> s.ChoiceLogprobs:
    return s.ChoiceLogprobs(content=[
        s.TokenLogprobOut(token=t.token, logprob=t.logprob, bytes=list(t.token.encode()),
                          top_logprobs=[s.TopLogprob(token=a, logprob=lp, bytes=list(a.encode())) for a, lp in t.top])
        for t in tokens
    ])
