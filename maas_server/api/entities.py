"""POST /v1/entities: named entities of one text or several, with character offsets (our own JSON API)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import Blueprint, Response

from ..models.base import EXTRACT_ENTITIES, Entities, EntityItem
from . import schemas as s
from ._common import check_count, json_response, parse_json, resolve_model, submit, wait_all
from .metering import report_usage

bp = Blueprint("entities", __name__)


@bp.post("/v1/entities")
def extract_entities() -> Any:
    body = parse_json(s.EntityRequest)
    entry = resolve_model("/v1/entities", body.model)
    check_count(len(body.inputs), "input", "input")
    results = wait_all(submit(entry, EXTRACT_ENTITIES, [EntityItem(text, body.aggregation) for text in body.inputs]))
    return _entity_list(entry.config.name, results)


def _entity_list(model: str, results: list[Entities]) -> Response:
    data = [s.EntityResult(index=i, entities=[s.EntitySpan(**asdict(entity)) for entity in result.entities])
            for i, result in enumerate(results)]
    tokens = sum(result.tokens for result in results)
    usage = s.Usage(prompt_tokens=tokens, total_tokens=tokens)
    report_usage(model, usage)
    return json_response(s.EntityList(model=model, data=data, usage=usage))
