"""POST /v1/embeddings in OpenAI's shape (float or base64 vectors)."""

from __future__ import annotations

import base64
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from ..errors import APIError
from ..models.text_io import EMBED, TokenIds
from ._common import check_count, json_response, parse_json, resolve_model, submit, wait_all
from .endpoints import Family
from .metering import report_usage
from .wire import OpenAIRequestBody, ResponseBody, Usage


class EmbeddingRequest(OpenAIRequestBody):
    model: str | None = None
    # Strings, or token ids in the model's own vocabulary (one list, or a list per input), as vLLM takes.
    input: str | list[str] | list[Annotated[int, Field(ge=0)]] | list[list[Annotated[int, Field(ge=0)]]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None

    @property
    def inputs(self) -> list[str | TokenIds]:
        if isinstance(self.input, str):
            return [self.input]
        items: list[Any] = list(self.input)
        if items and all(isinstance(x, int) for x in items):  # one list of ids is one input
            return [TokenIds(tuple(items))]
        return [x if isinstance(x, str) else TokenIds(tuple(x)) for x in items]


class Embedding(ResponseBody):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingList(ResponseBody):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: Usage


family = Family("embeddings", __name__)


@family.post("/v1/embeddings", "Embeddings (OpenAI shape)", request=EmbeddingRequest, response=EmbeddingList,
               serves=(EMBED,), examples={"floats": {"input": ["a red car", "a blue boat"]},
                                          "base64": {"input": "a red car", "encoding_format": "base64"}})
def embeddings() -> Any:
    body = parse_json(EmbeddingRequest)
    entry = resolve_model(body.model)
    check_count(len(body.inputs), "input", "input")
    assert entry.description is not None  # set when the model loaded, as the runner is
    dimensions = entry.description.dimensions
    if body.dimensions is not None and body.dimensions != dimensions:
        raise APIError(f"model {entry.config.name!r} produces {dimensions}-dimensional vectors only; omit `dimensions`",
                       status=400, param="dimensions", code="unsupported_dimensions")
    vectors = wait_all(submit(entry, EMBED, body.inputs))
    tokens = sum(v.tokens for v in vectors)
    data = [Embedding(index=i, embedding=_encode(v.values, body.encoding_format)) for i, v in enumerate(vectors)]
    usage = Usage(prompt_tokens=tokens, total_tokens=tokens)
    report_usage(entry.config.name, usage)
    return json_response(EmbeddingList(data=data, model=entry.config.name, usage=usage))


def _encode(vector: list[float], encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":  # what the openai package asks for by default
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
    return vector
