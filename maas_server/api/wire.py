"""What every route's request and response models share: the strict request base, the response base,
usage, the error envelope and the bounds on a JSON body's shape.

Requests are strict: unknown fields are rejected with a 400 naming them (a typo such as
`max_token` must not be silently ignored), and so are values of the wrong JSON type (`true` or
`"5"` where a number goes is not coerced; an integer where a float goes is fine). On the OpenAI
routes, `null` in an optional field means "not given", as OpenAI's reference allows; OpenAI fields
that change nothing here (`store`, `metadata`, `service_tier`...) are accepted and ignored, and
those we cannot honour are refused with a 400 naming them (docs/api.md has the table).

Each endpoint family's own models live in its wire module (api/embeddings.py, ...; api/generation/schemas.py).
/openapi.json is generated from them.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, model_validator

MAX_JSON_DEPTH = 32  # our deepest body (chat content parts) nests 5 levels
# Items in one JSON array of a body: validating is done holding the GIL (1 s for 200,000 chat
# messages, during which every stream stalls); the longest array a default model can use is a
# prompt of token ids (8,192).
MAX_JSON_ARRAY = 16_384


class RequestBody(BaseModel):
    """A request body: unknown fields and values of the wrong JSON type are refused (400 naming them)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class ResponseBody(BaseModel):
    """A response body: fields a newer server adds pass through clients that validate it."""

    model_config = ConfigDict(extra="allow")


class OpenAIRequestBody(RequestBody):
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


class Usage(ResponseBody):
    prompt_tokens: int
    completion_tokens: int = 0
    total_tokens: int


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


class ErrorDetail(ResponseBody):
    type: str
    message: str
    param: str | None
    code: str | None


class ErrorResponse(ResponseBody):
    error: ErrorDetail


def dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")
