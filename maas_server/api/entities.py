"""POST /v1/entities: named entities of one text or several, with character offsets (our own JSON API)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import Response

from ..errors import APIError
from ..models.base import EXTRACT_ENTITIES, Entities, EntityItem
from . import schemas as s
from ._common import check_count, json_response, parse_json, resolve_model, state, submit, wait_all
from .endpoints import Family
from .metering import report_usage

family = Family("entities", __name__)


# spaCy's working memory per character of input: 40 texts of 100,000 characters raised a worker's
# RSS by 2.3 GB (and took 83 s).
ENTITY_BYTES_PER_CHARACTER = 600


@family.post("/v1/entities", "Named entities with character offsets, as spans or per token", request=s.EntityRequest,
               response=s.EntityList, serves=(EXTRACT_ENTITIES,),
               examples={"spans": {"input": "Angela Merkel visited Paris in 2019."},
                         "tokens": {"input": ["Apple opened an office in Berlin.", "No names here."],
                                    "aggregation": "none"}})
def extract_entities() -> Any:
    body = parse_json(s.EntityRequest)
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
    data = [s.EntityResult(index=i, entities=[s.EntitySpan(**asdict(entity)) for entity in result.entities])
            for i, result in enumerate(results)]
    tokens = sum(result.tokens for result in results)
    usage = s.Usage(prompt_tokens=tokens, total_tokens=tokens)
    report_usage(model, usage)
    return json_response(s.EntityList(model=model, data=data, usage=usage))
