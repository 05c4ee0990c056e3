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
import re
from typing import Any

from .._common import new_id
from .schemas import ChatCompletionRequest, FunctionCallOut, NamedToolChoice, ToolCallOut


def offered(body: ChatCompletionRequest) -> list[dict[str, Any]] | None:
    """The tool definitions the prompt shows: all, or only the function tool_choice names."""
    if not body.calls_tools or body.tools is None:
        return None
    named = body.tool_choice.function.name if isinstance(body.tool_choice, NamedToolChoice) else None
    return [tool.model_dump(exclude_none=True) for tool in body.tools if named in (None, tool.function.name)]


def required(body: ChatCompletionRequest) -> bool:
    return body.calls_tools and body.tool_choice not in (None, "auto")


def calls_schema(body: ChatCompletionRequest) -> str:
    """JSON schema text of the array of calls the model must write (tool_choice "required" or named).

    Each tool's `parameters` is embedded under the array's items, where its own `$ref`s ("#/$defs/City",
    "#") would no longer resolve: its definitions move to the root's `$defs` under names of their own
    (`tool0.City`), and its references are rewritten to match.
    """
    definitions: dict[str, Any] = {}
    calls = [{"type": "object", "additionalProperties": False, "required": ["name", "arguments"], "properties": {
        "name": {"const": tool["function"]["name"]},
        "arguments": _lifted(tool["function"].get("parameters") or {"type": "object", "additionalProperties": False},
                             f"tool{i}", definitions)}}
        for i, tool in enumerate(offered(body) or [])]
    one_call: dict[str, Any] = calls[0] if len(calls) == 1 else {"anyOf": calls}
    array: dict[str, Any] = {"type": "array", "items": one_call, "minItems": 1}
    if body.parallel_tool_calls is False or isinstance(body.tool_choice, NamedToolChoice):
        array["maxItems"] = 1
    if definitions:
        array["$defs"] = definitions
    return json.dumps(array)


_DEFINITIONS = ("$defs", "definitions")  # the 2019+ keyword, and draft 7's
_DATA_KEYWORDS = {"const", "enum", "default", "examples"}  # values, not schemas: never rewritten


def _lifted(parameters: dict[str, Any], name: str, definitions: dict[str, Any]) -> dict[str, Any]:
    """`parameters` without its definitions, which join `definitions` as `name.<def>`; local $refs rewritten.

    A reference to the tool's own root ("#", "#/properties/...", as a recursive schema writes) points at
    a copy of the root kept as `definitions[name]`.
    """
    root = {key: value for key, value in parameters.items() if key not in _DEFINITIONS}
    rewritten: dict[str, Any] = _rewrite_refs(root, name)
    for keyword in _DEFINITIONS:
        for def_name, schema in (parameters.get(keyword) or {}).items():
            definitions[f"{name}.{def_name}"] = _rewrite_refs(schema, name)
    if _refers_to_root(parameters):
        definitions[name] = rewritten
    return rewritten


def _rewrite_refs(node: Any, name: str) -> Any:
    if isinstance(node, list):
        return [_rewrite_refs(item, name) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str) and value.startswith("#"):
            out[key] = _target(value, name)
        elif key in _DATA_KEYWORDS:
            out[key] = value
        else:
            out[key] = _rewrite_refs(value, name)
    return out


def _target(ref: str, name: str) -> str:
    for keyword in _DEFINITIONS:
        prefix = f"#/{keyword}/"
        if ref.startswith(prefix):
            return f"#/$defs/{name}.{ref[len(prefix):]}"
    return f"#/$defs/{name}{ref[1:]}"  # "#" or "#/properties/...": the tool's own root


def _refers_to_root(node: Any) -> bool:
    if isinstance(node, list):
        return any(_refers_to_root(item) for item in node)
    if not isinstance(node, dict):
        return False
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#") and not ref.startswith(tuple(f"#/{k}/" for k in _DEFINITIONS)):
        return True
    return any(_refers_to_root(value) for key, value in node.items() if key not in _DATA_KEYWORDS)


def read_forced_calls(text: str, names: list[str]) -> list[ToolCallOut]:
    """The calls of an answer written under the calls grammar, whole or cut short by max_tokens.

    The grammar makes the text a prefix of `[{"name": "f", "arguments": {...}}, ...]`: complete calls
    are read as they are; a cut call keeps its arguments as far as they were written (OpenAI does the
    same at `finish_reason: "length"`), and a cut name is the offered name it begins. An answer cut
    before any name can be told (several tools offered) has no calls.
    """
    whole = read_calls(text, set(names))
    if whole is not None:
        return whole
    decoder, calls, at = json.JSONDecoder(), [], text.find("[") + 1
    while 0 < at < len(text):
        at = len(text) - len(text[at:].lstrip(", \n\t"))
        try:
            call, at = decoder.raw_decode(text, at)
        except ValueError:
            break
        if isinstance(call, dict) and call.get("name") in names:
            calls.append(_call(call["name"], json.dumps(call.get("arguments", {}), ensure_ascii=False)))
    if at > 0 and (text[at:].strip() or not calls):  # the unfinished call: its name, perhaps cut, its arguments
        cut_name = _CUT_NAME.match(text, at)
        name = (cut_name["name"] if cut_name else None) or ""
        arguments = _CUT_ARGUMENTS.match(text, at)
        started = [offered for offered in names if offered.startswith(name)]
        if arguments is not None or len(started) == 1 or len(names) == 1:
            calls.append(_call((started or names)[0], arguments["arguments"] if arguments else ""))
    return calls


_CUT_NAME = re.compile(r'\{?(?:"name": "(?P<name>[^"]*))?')
_CUT_ARGUMENTS = re.compile(r'\{"name": "[^"]*", "arguments": (?P<arguments>.*)\Z', re.DOTALL)


def _call(name: str, arguments: str) -> ToolCallOut:
    return ToolCallOut(id=new_id("call"), function=FunctionCallOut(name=name, arguments=arguments))


def read_calls(text: str, names: set[str]) -> list[ToolCallOut] | None:
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
        calls.append(_call(call["name"], json.dumps(call.get("arguments", {}), ensure_ascii=False)))
    return calls
