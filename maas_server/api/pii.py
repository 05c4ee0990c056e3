"""POST /v1/pii: personal data in one text or several, found (type, span, score) and redacted if asked."""

from __future__ import annotations

from typing import Any, Literal

from flask import Response
from pydantic import Field, field_validator

from ..errors import APIError
from ..models.pii_io import FIND_PII, PiiItem, PiiResult, Redaction
from ..runtime.registry import ModelEntry
from ._common import check_count, json_response, parse_json, resolve_model, submit, wait_all
from .endpoints import Family
from .entities import admit_entity_texts
from .metering import report_usage
from .wire import RequestBody, ResponseBody, Usage


class PiiRequest(RequestBody):
    model: str | None = None
    input: str | list[str] = Field(description="a text, or several; each non-empty")
    types: list[str] | None = Field(
        None, min_length=1, description="the types to find, from the model's `labels` (GET /v1/models); default: "
                                        "all but LOCATION (CREDIT_CARD, EMAIL_ADDRESS, IBAN_CODE, IP_ADDRESS, "
                                        "PERSON, PHONE_NUMBER, US_SSN)")
    score_threshold: float = Field(0.0, ge=0, le=1, description="spans scored below this are left out")
    redact: Redaction | None = Field(
        None, description="also return each text redacted: `type` replaces a span by `<TYPE>` "
                          "(`<EMAIL_ADDRESS>`), `mask` by `mask_char` repeated over its length; null: find only")
    mask_char: str = Field("*", min_length=1, max_length=1, description="the character `mask` writes")
    include_text: bool = Field(False, description="give each span's text too (the personal data itself); "
                                                  "off by default so that answers need not be handled as such")

    @field_validator("input")
    @classmethod
    def _non_empty(cls, value: str | list[str]) -> str | list[str]:
        if any(not text for text in ([value] if isinstance(value, str) else value)):
            raise ValueError("an input is an empty string: send text to look for personal data in")
        return value

    @property
    def inputs(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class PiiSpanOut(ResponseBody):
    type: str = Field(description="what was found: `PERSON`, `EMAIL_ADDRESS`, `PHONE_NUMBER`...")
    start: int = Field(description="offset of the first character, in Unicode code points (Python str indices)")
    end: int = Field(description="offset just past the last character")
    score: float = Field(description="the recognizer's confidence in [0, 1]")
    text: str | None = Field(None, description="`input[start:end]`, with include_text only")


class PiiResultOut(ResponseBody):
    index: int
    entities: list[PiiSpanOut] = Field(description="in the order they occur in the input; they never overlap")
    redacted: str | None = Field(None, description="the input with every span replaced (with `redact` only)")


class PiiList(ResponseBody):
    object: Literal["list"] = "list"
    model: str
    data: list[PiiResultOut]
    usage: Usage


family = Family("pii", __name__)


@family.post("/v1/pii", "Personal data (names, emails, phones, card numbers, IBANs, IPs...): the spans found, and "
             "the text redacted if asked", request=PiiRequest, response=PiiList, serves=(FIND_PII,),
             personal_data=True,
             examples={"find": {"input": "Mail Ada Lovelace at ada@example.com."},
                       "redact": {"input": ["Call 212-555-0199.", "Nothing here."], "redact": "type"},
                       "mask": {"input": "Card 4111 1111 1111 1111", "redact": "mask", "mask_char": "#",
                                "types": ["CREDIT_CARD"], "include_text": True}})
def find_pii() -> Any:
    body = parse_json(PiiRequest)
    entry = resolve_model(body.model)
    check_count(len(body.inputs), "input", "input")
    _check_types(entry, body.types)
    admit_entity_texts(body.inputs, "input")  # the same spaCy work, and the same limit, as /v1/entities
    items = [PiiItem(text, tuple(body.types or ()), body.score_threshold, body.redact, body.mask_char)
             for text in body.inputs]
    results = wait_all(submit(entry, FIND_PII, items))
    return _pii_list(entry.config.name, body, results)


def _check_types(entry: ModelEntry, types: list[str] | None) -> None:
    assert entry.description is not None  # set when the model loaded, as the runner is
    known = entry.description.labels or ()
    unknown = sorted(set(types or ()) - set(known))
    if unknown:
        raise APIError(f"unknown types {', '.join(unknown)}; model {entry.config.name!r} finds {', '.join(known)}",
                       param="types", code="invalid_value")


def _pii_list(model: str, body: PiiRequest, results: list[PiiResult]) -> Response:
    data = []
    for index, (text, result) in enumerate(zip(body.inputs, results)):
        spans = [PiiSpanOut(type=span.type, start=span.start, end=span.end, score=span.score,
                            text=text[span.start:span.end] if body.include_text else None)
                 for span in result.spans]
        data.append(PiiResultOut(index=index, entities=spans, redacted=result.redacted))
    tokens = sum(result.tokens for result in results)
    usage = Usage(prompt_tokens=tokens, total_tokens=tokens)
    report_usage(model, usage)
    return json_response(PiiList(model=model, data=data, usage=usage))
