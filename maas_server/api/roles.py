"""POST /v1/srl: semantic roles, who did what to whom, when and where, for each verb of one text or several.

The answer follows AllenNLP's SRL output (per verb a BIO tag for each word and a bracketed description) so
that code written for it reads ours, plus each argument's characters and the `method` that found them.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from ..models.roles_io import LABEL_ROLES, Frame, Roles
from ._common import check_count, json_response, parse_json, resolve_model, submit, wait_all
from .endpoints import Family
from .entities import admit_entity_texts
from .metering import report_usage
from .wire import RequestBody, ResponseBody, Usage

family = Family("roles", __name__)


class RoleRequest(RequestBody):
    model: str | None = None
    input: str | list[str] = Field(description="a text, or several; each non-empty")

    @field_validator("input")
    @classmethod
    def _non_empty(cls, value: str | list[str]) -> str | list[str]:
        if any(not text.strip() for text in ([value] if isinstance(value, str) else value)):
            raise ValueError("an input is empty: send text to find the roles in")
        return value

    @property
    def inputs(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class RoleArgumentOut(ResponseBody):
    role: str = Field(description="PropBank's role: ARG0 (doer), ARG1 (what is acted on), ARG2, ARGM-TMP, ARGM-LOC...")
    text: str = Field(description="the input's characters from `start` to `end`")
    start: int
    end: int


class VerbOut(ResponseBody):
    verb: str
    start: int = Field(description="the verb's characters in the input")
    end: int
    tags: list[str] = Field(description="a BIO tag per word of `words` (B-V on the verb), as AllenNLP gives them")
    description: str = Field(description='AllenNLP\'s bracketed sentence: "[ARG0: The boy] [V: broke] [ARG1: it]"')
    arguments: list[RoleArgumentOut] = Field(description="the tagged runs with their characters, in order")


class RolesOut(ResponseBody):
    index: int
    words: list[str]
    verbs: list[VerbOut] = Field(description="one per verb, in order; empty when the text has none")
    method: str = Field(description='"dependency-rules": rules over a syntactic parse, not a trained SRL model; '
                                    '"model": a trained SRL model')


class RoleList(ResponseBody):
    object: str = "list"
    model: str
    data: list[RolesOut]
    usage: Usage


@family.post("/v1/srl", "Semantic roles per verb (AllenNLP's shape), and how they were found",
             request=RoleRequest, response=RoleList, serves=(LABEL_ROLES,),
             examples={"one": {"input": "The window was broken by the boy yesterday."},
                       "several": {"input": ["Mary gave John a book.", "Where did you park the car?"]}})
def label_roles() -> Any:
    body = parse_json(RoleRequest)
    entry = resolve_model(body.model)
    check_count(len(body.inputs), "input", "input")
    admit_entity_texts(body.inputs, "input")  # a parse costs what entities cost, per character
    results: list[Roles] = wait_all(submit(entry, LABEL_ROLES, body.inputs))
    data = [RolesOut(index=i, words=r.words, verbs=[_verb(f) for f in r.verbs], method=r.method)
            for i, r in enumerate(results)]
    tokens = sum(result.tokens for result in results)
    usage = Usage(prompt_tokens=tokens, total_tokens=tokens)
    report_usage(entry.config.name, usage)
    return json_response(RoleList(model=entry.config.name, data=data, usage=usage))


def _verb(frame: Frame) -> VerbOut:
    arguments = [RoleArgumentOut(role=a.role, text=a.text, start=a.start, end=a.end) for a in frame.arguments]
    return VerbOut(verb=frame.verb, start=frame.start, end=frame.end, tags=frame.tags,
                   description=frame.description, arguments=arguments)
