"""POST /v1/responses: OpenAI's Responses API for text, on the same generation path as chat.

The request is turned into the equivalent chat request (`ResponsesRequest.as_chat`), so
structured output (`text.format`) and function tools behave exactly as on
/v1/chat/completions; only the shapes differ. Nothing is stored: `store` is accepted and
ignored (a zero-retention key's `store: true` is a 400 `store_not_allowed`: it asks for what
the key forbids), and `previous_response_id` is a 400.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from ...errors import APIError
from ...models.generation_io import GENERATE, Choice, GenerationResult, TokenLogprob
from .._common import new_id, parse_json
from ..accounting import zero_retention
from ..endpoints import Family
from . import tools
from .completions import Shaper, chat_generation, respond, tool_names
from .schemas import ChatCompletionRequest, ResponseEvent, ResponseObject, ResponsesRequest, ToolCallOut

family = Family("responses", __name__)


@family.post("/v1/responses", "OpenAI's Responses API for text (no stored state); `stream: true` answers with "
               "server-sent events (response.created ... response.completed)", request=ResponsesRequest,
               response=ResponseObject, events=ResponseEvent, serves=(GENERATE,),
               examples={"text": {"input": "What is the capital of France?", "max_output_tokens": 8,
                                  "temperature": 0}})
def create_response() -> Any:
    body = parse_json(ResponsesRequest)
    if body.store and zero_retention():
        raise APIError("this API key is zero-retention: nothing its requests carry or return may be stored; "
                       "send store: false or leave it out", param="store", code="store_not_allowed")
    chat = ChatCompletionRequest.model_validate(body.as_chat())  # a 400 from here names chat's field
    entry, generation = chat_generation(chat)
    shaper = _ResponseShaper(entry.config.name, body, tool_names(generation), forced=generation.tools_required)
    return respond(entry, [generation], shaper, chat.stream)


class _ResponseShaper(Shaper):
    """One response object, or its stream of typed events (response.created ... response.completed)."""

    def __init__(self, model: str, body: ResponsesRequest, names: list[str], forced: bool = False) -> None:
        super().__init__(new_id("resp"), model, 1)
        self.body, self.names = body, names
        self.forced = forced  # tool_choice "required" or named: the output is calls, even when cut short
        self.buffers_streams = bool(names)
        self.message_id = new_id("msg")
        self.sequence = 0
        self.text = ""

    # -- the whole response

    def full(self, results: list[GenerationResult]) -> dict[str, Any]:
        return self._response(results[0], "completed")

    def _response(self, result: GenerationResult | None, status: str) -> dict[str, Any]:
        choice = result.choices[0] if result is not None else None
        cut = choice is not None and choice.finish_reason == "length"
        return {
            "id": self.id, "object": "response", "created_at": self.created, "model": self.model,
            "status": "incomplete" if cut else status, "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if cut else None,
            "instructions": self.body.instructions, "max_output_tokens": self.body.max_output_tokens,
            "temperature": self.body.temperature, "top_p": self.body.top_p,
            "parallel_tool_calls": self.body.parallel_tool_calls is not False,
            "tool_choice": self.body.tool_choice if isinstance(self.body.tool_choice, str) else (
                self.body.tool_choice.model_dump() if self.body.tool_choice else "auto"),
            "tools": [tool.model_dump(exclude_none=True) for tool in self.body.tools or []],
            "text": {"format": (self.body.text.format.model_dump(by_alias=True, exclude_none=True)
                                if self.body.text and self.body.text.format else {"type": "text"})},
            "store": False, "metadata": self.body.metadata or {},
            "output": self._output(choice) if choice is not None else [],
            "usage": _usage(result) if result is not None else None,
        }

    def _output(self, choice: Choice) -> list[dict[str, Any]]:
        if self.forced:
            calls: list[ToolCallOut] | None = tools.read_forced_calls(choice.text, self.names)
        else:
            calls = (tools.read_calls(choice.text, set(self.names)) if self.names and choice.finish_reason == "stop"
                     else None)
        if calls is not None and (calls or self.forced):
            status = "completed" if choice.finish_reason == "stop" else "incomplete"
            return [{"type": "function_call", "id": new_id("fc"), "call_id": call.id, "name": call.function.name,
                     "arguments": call.function.arguments, "status": status} for call in calls]
        return [self._message(choice.text, "completed")]

    def _message(self, text: str, status: str) -> dict[str, Any]:
        content = [{"type": "output_text", "text": text, "annotations": []}] if status == "completed" else []
        return {"type": "message", "id": self.message_id, "status": status, "role": "assistant",
                "content": content}

    # -- the stream

    def event(self, kind: str, **fields: Any) -> dict[str, Any]:
        self.sequence += 1
        return {"type": kind, "sequence_number": self.sequence, **fields}

    def start_chunks(self, prompts: int) -> Iterator[dict[str, Any]]:
        yield self.event("response.created", response=self._response(None, "in_progress"))
        yield self.event("response.in_progress", response=self._response(None, "in_progress"))
        yield self.event("response.output_item.added", output_index=0, item=self._message("", "in_progress"))
        yield self.event("response.content_part.added", item_id=self.message_id, output_index=0, content_index=0,
                         part={"type": "output_text", "text": "", "annotations": []})

    def text_chunk(self, index: int, text: str, tokens: Sequence[TokenLogprob]) -> dict[str, Any]:
        self.text += text
        return self.event("response.output_text.delta", item_id=self.message_id, output_index=0, content_index=0,
                          delta=text, logprobs=[])

    def finish_chunks(self, prompt_index: int, result: GenerationResult) -> Iterator[dict[str, Any]]:
        part = {"type": "output_text", "text": self.text, "annotations": []}
        yield self.event("response.output_text.done", item_id=self.message_id, output_index=0, content_index=0,
                         text=self.text, logprobs=[])
        yield self.event("response.content_part.done", item_id=self.message_id, output_index=0, content_index=0,
                         part=part)
        yield self.event("response.output_item.done", output_index=0, item=self._message(self.text, "completed"))
        yield self._finished(result)

    def buffered_chunks(self, results: list[GenerationResult], include_usage: bool) -> Iterator[dict[str, Any]]:
        """With tools the answer is known only at its end: its items are sent whole."""
        response = self._response(results[0], "completed")
        yield self.event("response.created", response=self._response(None, "in_progress"))
        for index, item in enumerate(response["output"]):
            yield self.event("response.output_item.added", output_index=index, item=item)
            if item["type"] == "function_call":
                yield self.event("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                                 arguments=item["arguments"])
            yield self.event("response.output_item.done", output_index=index, item=item)
        yield self._finished(results[0])

    def _finished(self, result: GenerationResult) -> dict[str, Any]:
        response = self._response(result, "completed")
        kind = "response.incomplete" if response["status"] == "incomplete" else "response.completed"
        return self.event(kind, response=response)

    def usage_chunk(self, results: list[GenerationResult]) -> dict[str, Any]:
        raise NotImplementedError("the Responses API carries usage in response.completed")


def _usage(result: GenerationResult) -> dict[str, Any]:
    output = sum(c.completion_tokens for c in result.choices)
    return {"input_tokens": result.prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": output, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": result.prompt_tokens + output}
