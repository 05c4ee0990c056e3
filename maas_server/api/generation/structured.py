"""The JSON schemas structured output enforces, as the server admits them: bounded, and with an end.

Every schema that reaches the grammar compiler (`response_format`, the calls grammar of forced tool
calls, TGI's `grammar`) passes here first, on the request's thread:

- **Limits** (ServerConfig `max_schema_depth`, `max_schema_properties`, `max_schema_enum`,
  `max_schema_pattern`): nesting is counted through `$ref`s, so a chain of definitions is as deep as
  the objects it nests (a recursive schema counts its cycle once: the compiler expands it lazily). The
  compiler recurses once per level and its native stack is finite: about 1,000 levels kill the
  process. Past a limit: 400 `schema_too_complex`, naming the limit.
- **An end for every answer**: an object schema with `properties` and no word on other keys is closed
  (`additionalProperties: false`, as vLLM's xgrammar does in strict mode); any other object without
  `maxProperties` takes at most DEFAULT_MAX_PROPERTIES keys; an integer or number without bounds lies
  within +/- MAX_MAGNITUDE (15 digits before the point); `json_object` mode is JSON_OBJECT. Without
  these a small model may add keys, or digits, until `max_tokens`. A schema that says otherwise keeps
  what it says: `additionalProperties: true`, its own `maxProperties`, `minimum` and `maximum`.
"""

from __future__ import annotations

import json
from typing import Any

from ...errors import APIError
from .._common import state
from ..wire import nests_deeper

DEFAULT_MAX_PROPERTIES = 32
MAX_MAGNITUDE = 10**15 - 1
# `json_object` mode asks for any object: the object it gets is any JSON with every value bounded (keys per
# object, items per array, characters per string and key), so that sampling cannot wander in one value until
# max_tokens; nesting is left to the model.
_ANY = "#/$defs/maas_json_value"
_ANY_VALUE = {"anyOf": [
    {"type": "string", "maxLength": 256}, {"type": "number", "minimum": -MAX_MAGNITUDE, "maximum": MAX_MAGNITUDE},
    {"type": "boolean"}, {"type": "null"},
    {"type": "array", "maxItems": 16, "items": {"$ref": _ANY}},
    {"type": "object", "maxProperties": 16, "patternProperties": {"^.{1,64}$": {"$ref": _ANY}},
     "additionalProperties": False},
]}
JSON_OBJECT = {"type": "object", "maxProperties": 16, "patternProperties": {"^.{1,64}$": {"$ref": _ANY}},
               "additionalProperties": False, "$defs": {"maas_json_value": _ANY_VALUE}}
# Keywords whose value is one schema, a list of schemas, or a map of name -> schema.
_ONE = ("additionalProperties", "items", "contains", "not", "if", "then", "else", "propertyNames",
        "unevaluatedItems", "unevaluatedProperties")
_LIST = ("anyOf", "oneOf", "allOf", "prefixItems")
_MAP = ("properties", "patternProperties", "dependentSchemas")
_DEFINITIONS = ("$defs", "definitions")  # maps of name -> schema too, but not nested where they are written
_OPEN_WORDS = ("additionalProperties", "unevaluatedProperties", "patternProperties")


def admitted_schema(text: str, field: str) -> str:
    """The schema text to compile: 400 (param `field`) past a limit; with the defaults above applied."""
    config = state().config
    schema = _parsed(text, field, json_depth=4 * config.max_schema_depth)
    if schema == {"type": "object"}:
        return json.dumps(JSON_OBJECT)
    _check_limits(schema, field)
    return json.dumps(_with_ends(schema))


def _refuse(message: str, field: str) -> APIError:
    return APIError(message, status=400, param=field, code="schema_too_complex")


def _parsed(text: str, field: str, json_depth: int) -> Any:
    try:
        schema = json.loads(text)
    except RecursionError:
        raise _refuse(f"the schema nests deeper than {json_depth} levels of JSON", field) from None
    except ValueError as exc:
        raise APIError(f"the schema is not JSON: {exc}", status=400, param=field, code="invalid_schema") from None
    if nests_deeper(schema, json_depth):  # before anything here recurses into it
        raise _refuse(f"the schema nests deeper than {json_depth} levels of JSON", field)
    return schema


def _subschemas(node: dict[str, Any], definitions: bool = True) -> list[Any]:
    """The schemas directly inside `node`; with definitions=False, not its `$defs`, which count where used."""
    found: list[Any] = []
    for key in _ONE:
        if isinstance(node.get(key), (dict, list)):
            found += node[key] if isinstance(node[key], list) else [node[key]]
    for key in _LIST:
        if isinstance(node.get(key), list):
            found += node[key]
    for key in _MAP + (_DEFINITIONS if definitions else ()):
        if isinstance(node.get(key), dict):
            found += node[key].values()
    return [child for child in found if isinstance(child, dict)]


def _check_limits(schema: Any, field: str) -> None:
    config = state().config
    nodes = _all_nodes(schema)
    properties = sum(len(n["properties"]) for n in nodes if isinstance(n.get("properties"), dict))
    if properties > config.max_schema_properties:
        raise _refuse(f"the schema has {properties} properties, above this server's limit of "
                      f"{config.max_schema_properties} (max_schema_properties)", field)
    values = sum(len(n["enum"]) for n in nodes if isinstance(n.get("enum"), list))
    if values > config.max_schema_enum:
        raise _refuse(f"the schema's enums hold {values} values, above this server's limit of "
                      f"{config.max_schema_enum} (max_schema_enum)", field)
    patterns = [n["pattern"] for n in nodes if isinstance(n.get("pattern"), str)]
    patterns += [name for n in nodes if isinstance(n.get("patternProperties"), dict) for name in n["patternProperties"]]
    longest = max(map(len, patterns), default=0)
    if longest > config.max_schema_pattern:
        raise _refuse(f"a pattern in the schema is {longest} characters long, above this server's limit of "
                      f"{config.max_schema_pattern} (max_schema_pattern)", field)
    try:
        _Depth(schema, config.max_schema_depth).of(schema)
    except _TooDeep:
        raise _refuse(f"the schema nests deeper than this server's limit of {config.max_schema_depth} levels "
                      f"(max_schema_depth; counted through $ref)", field) from None


def _all_nodes(schema: Any) -> list[dict[str, Any]]:
    nodes, pending = [], [schema] if isinstance(schema, dict) else []
    while pending:
        node = pending.pop()
        nodes.append(node)
        pending += _subschemas(node)
    return nodes


class _TooDeep(Exception):
    pass


class _Depth:
    """Levels of nesting of a schema, following local `$ref`s (a reference stands where its target would);
    a reference back into its own path is a cycle. Stops with _TooDeep as soon as a path passes `limit`."""

    def __init__(self, root: Any, limit: int) -> None:
        self.root, self.limit = root, limit
        self.known: dict[str, int] = {}
        self.open: set[str] = set()

    def of(self, node: Any, level: int = 1) -> int:
        if not isinstance(node, dict):
            return 0
        if level > self.limit:
            raise _TooDeep
        children = _subschemas(node, definitions=False)
        depth = 1 + max((self.of(child, level + 1) for child in children), default=0)
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#"):
            depth = max(depth, self._through(ref, level))
        return depth

    def _through(self, ref: str, level: int) -> int:
        if ref in self.known:
            if level + self.known[ref] - 1 > self.limit:
                raise _TooDeep
            return self.known[ref]
        if ref in self.open:
            return 0  # recursion: expanded as deep as the answer goes, by the compiler, lazily
        self.open.add(ref)
        depth = self.of(_resolve(self.root, ref), level)
        self.open.discard(ref)
        self.known[ref] = depth
        return depth


def _resolve(root: Any, ref: str) -> Any:
    node = root
    for part in ref[1:].split("/")[1:] if ref != "#" else []:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None  # unresolvable: the compiler names it
    return node


def _bound(schema: dict[str, Any], word: str) -> float | None:
    """The schema's own `minimum`/`maximum` (or its exclusive form) when it is a number, else None."""
    value = schema.get(word, schema.get("exclusive" + word[0].upper() + word[1:]))
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _says(schema: dict[str, Any], word: str) -> bool:
    return word in schema or "exclusive" + word[0].upper() + word[1:] in schema


def _with_ends(schema: Any) -> Any:
    """A copy of the schema where every object, integer and number has an end (the module's docstring)."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    for key in _ONE:
        if isinstance(out.get(key), dict):
            out[key] = _with_ends(out[key])
        elif isinstance(out.get(key), list):
            out[key] = [_with_ends(item) for item in out[key]]
    for key in _LIST:
        if isinstance(out.get(key), list):
            out[key] = [_with_ends(item) for item in out[key]]
    for key in _MAP + _DEFINITIONS:
        if isinstance(out.get(key), dict):
            out[key] = {name: _with_ends(item) for name, item in out[key].items()}
    types = out.get("type")
    types = types if isinstance(types, list) else [types]
    if "object" in types or "properties" in out:
        if isinstance(out.get("properties"), dict) and not any(word in out for word in _OPEN_WORDS):
            out["additionalProperties"] = False
        elif "maxProperties" not in out and out.get("additionalProperties") is not False:
            out["maxProperties"] = DEFAULT_MAX_PROPERTIES
    if "integer" in types or "number" in types:
        low, high = _bound(out, "minimum"), _bound(out, "maximum")
        if not _says(out, "maximum") and (low is None or low < MAX_MAGNITUDE):  # never below its own minimum
            out["maximum"] = MAX_MAGNITUDE
        if not _says(out, "minimum") and (high is None or high > -MAX_MAGNITUDE):
            out["minimum"] = -MAX_MAGNITUDE
    return out
