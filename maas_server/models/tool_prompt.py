"""Tool calls in the prompt, for chat templates that know nothing of tools (SmolLM2's among them).

A template that takes `tools` (Qwen, Llama 3.1, Hermes...) renders them its own way; this module is
the documented fallback for the others: the tools go into the system message as JSON, with the
instruction to call them by answering with only a JSON array of calls, and earlier turns are
rewritten in the same terms: an assistant turn that called tools becomes that JSON, and a tool's
answer becomes a user turn that says which call it answers. No torch here.
"""

from __future__ import annotations

import json
from typing import Any

CALL_FORMAT = '[{"name": "<function name>", "arguments": {<its arguments>}}]'


def template_takes_tools(template: str | None) -> bool:
    """Whether a chat template renders a `tools` variable itself."""
    return bool(template) and "tools" in str(template)


def with_tools_in_text(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                       required: bool) -> list[dict[str, str]]:
    """`messages` with tool definitions, calls and results written as plain text turns."""
    turns = [_plain(message) for message in messages]
    if tools:
        instruction = _instruction(tools, required)
        if turns and turns[0]["role"] == "system":
            turns[0] = {"role": "system", "content": f"{turns[0]['content']}\n\n{instruction}"}
        else:
            turns.insert(0, {"role": "system", "content": instruction})
    return turns


def _instruction(tools: list[dict[str, Any]], required: bool) -> str:
    listed = "\n".join(json.dumps(tool, ensure_ascii=False) for tool in tools)
    how = (f"Call one or more of them now by answering with only a JSON array: {CALL_FORMAT}" if required else
           f"To call functions, answer with only a JSON array: {CALL_FORMAT}; otherwise answer as usual.")
    return f"You can call these functions:\n{listed}\n{how}"


def _plain(message: dict[str, Any]) -> dict[str, str]:
    role, content = message["role"], message.get("content") or ""
    if role == "tool":
        return {"role": "user", "content": f"Result of call {message.get('tool_call_id', '')}: {content}"}
    calls = message.get("tool_calls")
    if role == "assistant" and calls:
        written = [{"name": c["function"]["name"], "arguments": _arguments(c["function"].get("arguments"))}
                   for c in calls]
        return {"role": "assistant", "content": (f"{content}\n" if content else "") + json.dumps(written)}
    return {"role": role, "content": content}


def _arguments(arguments: Any) -> Any:
    """OpenAI sends arguments as a JSON string; write them back as the JSON they are."""
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except json.JSONDecodeError:
            return arguments
    return arguments if arguments is not None else {}
