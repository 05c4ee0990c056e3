"""POST /v1/entities: named entities of one text or several, with character offsets (our own JSON API)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from flask import Response
from pydantic import Field, field_validator

from ..errors import APIError
from ..models.entities_io import EXTRACT_ENTITIES, Aggregation, Entities, EntityItem
from ._common import check_count, json_response, parse_json, resolve_model, state, submit, wait_all
from .endpoints import Family
from .metering import report_usage
from .wire import RequestBody, ResponseBody, Usage


class EntityRequest(RequestBody):
    model: str | None = None
    input: str | list[str] = Field(description="a text, or several; each non-empty")
    aggregation: Aggregation = Field(
        "simple", description="`simple`: one span per entity (B-/I- tokens merged); `none`: one row per token "
                              "inside an entity, labelled with its IOB tag (`B-PERSON`, `I-PERSON`)")

    @field_validator("input")
    @classmethod
    def _non_empty(cls, value: str | list[str]) -> str | list[str]:
        # Checked here rather than as min_length on each union member, so that the error names `input`.
        if any(not text for text in ([value] if isinstance(value, str) else value)):
            raise ValueError("an input is an empty string: send text to find entities in")
        return value

    @property
    def inputs(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class EntitySpan(ResponseBody):
    text: str = Field(description="the input's characters from `start` to `end`: `input[start:end] == text`")
    label: str = Field(description="the entity type (`PERSON`, `GPE`...); with aggregation `none` its IOB tag")
    start: int = Field(description="offset of the first character, in Unicode code points (Python str indices)")
    end: int = Field(description="offset just past the last character")
    score: float | None = Field(
        description="the model's probability for the label (a span's mean over its tokens); null when the model "
                    "gives none: spaCy pipelines decide without probabilities")


class EntityResult(ResponseBody):
    index: int
    entities: list[EntitySpan] = Field(description="in the order they occur in the input")


class EntityList(ResponseBody):
    object: Literal["list"] = "list"
    model: str
    data: list[EntityResult]
    usage: Usage


family = Family("entities", __name__)


# spaCy's working memory per character of input: 40 texts of 100,000 characters raised a worker's
# RSS by 2.3 GB (and took 83 s).
ENTITY_BYTES_PER_CHARACTER = 600


@family.post("/v1/entities", "Named entities with character offsets, as spans or per token", request=EntityRequest,
               response=EntityList, serves=(EXTRACT_ENTITIES,),
               examples={"spans": {"input": "Angela Merkel visited Paris in 2019."},
                         "tokens": {"input": ["Apple opened an office in Berlin.", "No names here."],
                                    "aggregation": "none"}})
def extract_entities() -> Any:
    body = parse_json(EntityRequest)
    entry = resolve_model(body.model)
    check_count(len(body.inputs), "input", "input")
    admit_entity_texts(body.inputs, "input")
    results = wait_all(submit(entry, EXTRACT_ENTITIES, [EntityItem(text, body.aggregation) for text in body.inputs]))
    return _entity_list(entry.config.name, results)


def admit_entity_texts(texts: list[str], param: str) -> None:
    """A call's characters in all (what spaCy's time and memory follow): 400 past max_entity_characters,
    then reserved from the worker's memory budget."""
    characters = sum(len(text) for text in texts)
    limit = state().config.max_entity_characters
    if characters > limit:
        raise APIError(f"the texts hold {characters} characters in all, above this server's limit of {limit} per "
                       f"call (max_entity_characters); split the call", param=param, code="request_too_large")
    state().memory.reserve(characters * ENTITY_BYTES_PER_CHARACTER, f"entities in {characters} characters",
                           param=param)


def _entity_list(model: str, results: list[Entities]) -> Response:
    data = [EntityResult(index=i, entities=[EntitySpan(**asdict(entity)) for entity in result.entities])
            for i, result in enumerate(results)]
    tokens = sum(result.tokens for result in results)
    usage = Usage(prompt_tokens=tokens, total_tokens=tokens)
    report_usage(model, usage)
    return json_response(EntityList(model=model, data=data, usage=usage))
