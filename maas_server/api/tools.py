"""Tool calls on /v1/chat/completions: what the model is offered, and reading its calls back.

The model writes calls as a JSON array, `[{"name": ..., "arguments": {...}}]` (a chat template
that knows tools is told so by its own rendering; others get models/tool_prompt.py's
instruction). With tool_choice "required" or a named function that array is enforced token by
token through the structured-output grammar, so every call names a given function and its
arguments follow that function's `parameters`. With "auto" the model writes freely, and its
answer is read as calls only when it is exactly such an array of known functions.
"""

from __future__ import annotations

import json
from typing import Any

from . import schemas as s
from ._common import new_id


def offered(body: s.ChatCompletionRequest) -> list[dict[str, Any]] | None:
    """The tool definitions the prompt shows: all, or only the function tool_choice names."""
    if not body.calls_tools or body.tools is None:
        return None
    named = body.tool_choice.function.name if isinstance(body.tool_choice, s.NamedToolChoice) else None
    return [tool.model_dump(exclude_none=True) for tool in body.tools if named in (None, tool.function.name)]


def required(body: s.ChatCompletionRequest) -> bool:
    return body.calls_tools and body.tool_choice not in (None, "auto")


def calls_schema(body: s.ChatCompletionRequest) -> str:
    """JSON schema text of the array of calls the model must write (tool_choice "required" or named)."""
    calls = [{"type": "object", "additionalProperties": False, "required": ["name", "arguments"], "properties": {
        "name": {"const": tool["function"]["name"]},
        "arguments": tool["function"].get("parameters") or {"type": "object", "additionalProperties": False}}}
        for tool in offered(body) or []]
    one_call: dict[str, Any] = calls[0] if len(calls) == 1 else {"anyOf": calls}
    array: dict[str, Any] = {"type": "array", "items": one_call, "minItems": 1}
    if body.parallel_tool_calls is False or isinstance(body.tool_choice, s.NamedToolChoice):
        array["maxItems"] = 1
    return json.dumps(array)


def read_calls(text: str, names: set[str]) -> list[s.ToolCallOut] | None:
    """The calls in a model's answer, or None when it is not exactly an array of calls of known functions."""
    try:
        written = json.loads(text)
    except json.JSONDecodeError:
        return None
    if isinstance(written, dict):
        written = [written]
    if not isinstance(written, list) or not written:
        return None
    calls = []
    for call in written:
        if not (isinstance(call, dict) and call.get("name") in names and isinstance(call.get("arguments", {}), dict)):
            return None
        arguments = json.dumps(call.get("arguments", {}), ensure_ascii=False)
        calls.append(s.ToolCallOut(id=new_id("call"), function=s.FunctionCallOut(name=call["name"],
                                                                                 arguments=arguments)))
    return calls
