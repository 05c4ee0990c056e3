"""GET /openapi.json, generated from the same pydantic models the routes validate with."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .. import __version__
from . import schemas as s
from .accounting import UsageReport

bp = Blueprint("openapi", __name__)

# (method, path, summary, request model or None, response model)
ROUTES: list[tuple[str, str, str, type[BaseModel] | None, type[BaseModel]]] = [
    ("post", "/v1/completions", "Text completion (OpenAI shape; stream=true for SSE)", s.CompletionRequest, s.Completion),
    ("post", "/v1/chat/completions", "Chat completion (OpenAI shape; stream=true for SSE)", s.ChatCompletionRequest,
     s.ChatCompletion),
    ("post", "/v1/embeddings", "Embeddings (OpenAI shape)", s.EmbeddingRequest, s.EmbeddingList),
    ("post", "/v1/classify/text", "Text classification, zero-shot or with the model's labels",
     s.TextClassificationRequest, s.ClassificationList),
    ("post", "/v1/classify/image", "Image classification (JSON base64 here, or multipart file parts)",
     s.ImageClassificationRequest, s.ClassificationList),
    ("get", "/v1/models", "List the served models", None, s.ModelList),
    ("get", "/v1/usage", "The caller's own usage per model (?since=DATE)", None, UsageReport),
]
_ERRORS = {"400": "Malformed request", "401": "Missing, unknown, revoked or expired API key",
           "404": "Unknown route or model", "413": "Too large", "422": "Invalid field value",
           "429": "Rate limit reached (see Retry-After)", "503": "Not ready or queue full"}


@bp.get("/openapi.json")
def openapi() -> Any:
    return build_openapi()


def build_openapi() -> dict[str, Any]:
    models = {m for _, _, _, req, resp in ROUTES for m in (req, resp) if m is not None} | {s.ErrorResponse}
    ref = "#/components/schemas/{model}"
    keys, schemas = models_json_schema([(m, "validation") for m in sorted(models, key=lambda m: m.__name__)],
                                       ref_template=ref)
    paths: dict[str, Any] = {"/health": {"get": _op("Liveness", None, None)},
                             "/ready": {"get": _op("Readiness: 200 once every model is loaded", None, None)}}
    for method, path, summary, req, resp in ROUTES:
        paths.setdefault(path, {})[method] = _op(summary, req, resp)
    return {
        "openapi": "3.1.0",
        "info": {"title": "maas", "version": __version__,
                 "description": "Model-as-a-Service: OpenAI-compatible completions, chat, embeddings and models; "
                                "classification for text and images."},
        "paths": paths,
        "components": {"schemas": schemas.get("$defs", {})},
    }


def _op(summary: str, request: type[BaseModel] | None, response: type[BaseModel] | None) -> dict[str, Any]:
    def content(model: type[BaseModel]) -> dict[str, Any]:
        return {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}

    op: dict[str, Any] = {"summary": summary, "responses": {"200": {"description": "OK"}}}
    if response is not None:
        op["responses"]["200"]["content"] = content(response)
    if request is not None:
        op["requestBody"] = {"required": True, "content": content(request)}
    if response is not None:  # the /v1 routes: any of them may answer with the error envelope
        op["responses"].update({code: {"description": text, "content": content(s.ErrorResponse)}
                                for code, text in _ERRORS.items()})
    return op
