"""GET /openapi.json, generated from the same pydantic models the routes validate with.

Each route is one `Route` line below: its request and response models, the content types it
speaks (JSON, server-sent events, multipart, Prometheus text), its parameters and the error
statuses it can answer with (always the one error envelope). tests/server/test_openapi.py checks
that every Flask route has its line, and schemathesis checks that the answers match.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .. import __version__
from . import hf_schemas as hf
from . import schemas as s
from ._common import MAX_REQUEST_TIMEOUT_S, MIN_REQUEST_TIMEOUT_S
from .accounting import UsageReport
from .admin import AdminKey, AdminKeyList, AdminUsage, AuditList, CreatedKey, KeyCreate, KeyUpdate

bp = Blueprint("openapi", __name__)

_REF = "#/components/schemas/{model}"
_FILE = {"type": "string", "format": "binary", "contentMediaType": "application/octet-stream"}

# Which error statuses a route answers with, and what each means there.
_ERRORS = {
    400: "Invalid request: malformed JSON, wrong content type, a body cut short, a key in the URL "
         "(`api_key_in_url`), or a field's value invalid or over a limit (`param` names it)",
    401: "Missing, unknown, revoked or expired API key (the server's auth mode decides when a key is needed)",
    403: "The key may not use this model or task (`model_not_allowed`, `task_not_allowed`), a call that is not "
         "an admin key's to /v1/admin/ (`admin_required`), or, served without a key, sent by a browser from another "
         "origin than the server's own or its `cors_origins` (`cross_origin_refused`)",
    409: "An active key with this name exists (`key_exists`)",
    404: "Unknown model (`model_not_found`)",
    413: "Body, image bytes or image pixels over the server's limits",
    429: "The key's requests or tokens per minute are used up",
    408: "The request's headers or body did not arrive within the server's deadlines (`request_timeout`)",
    421: "Served without a key, and its Host is none of the server's `allowed_hosts`, localhost or an IP address "
         "(`host_not_allowed`)",
    500: "`model_error`: the model failed on this input alone (sent with x-should-retry: false); "
         "`internal_error`: a bug. The message carries the request id, never a stack trace",
    503: "Over capacity or past the request's deadline (`overloaded`, at once), a model still loading, "
         "its queue full or timed out, the account store unavailable, or the server draining",
}
_POST_ERRORS = (400, 401, 403, 404, 408, 413, 421, 429, 500, 503)
_GET_ERRORS = (400, 401, 421, 429, 500, 503)
_RETRY_AFTER = (429, 503)


# Every route that queues work for a model takes the caller's deadline (api/_common.py).
_REQUEST_TIMEOUT: dict[str, Any] = {
    "name": "X-Request-Timeout", "in": "header", "required": False,
    "description": "Seconds the caller will wait for the model to start on the request; a request the "
                   "server estimates would wait longer gets 503 `overloaded` at once (default: the "
                   "model's queue_timeout_s; at most the server's max_request_timeout_s, 300 s by default)",
    "schema": {"type": "number", "minimum": MIN_REQUEST_TIMEOUT_S, "maximum": MAX_REQUEST_TIMEOUT_S},
}


@dataclass(frozen=True)
class Route:
    """One operation of the API, as /openapi.json describes it."""

    method: str
    path: str  # OpenAPI's template: /v1/models/{model}
    summary: str
    request: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    events: type[BaseModel] | None = None  # with `stream: true` the answer is server-sent events of these
    multipart: dict[str, Any] | None = None  # a multipart/form-data body besides the JSON one
    text: str | None = None  # a text/plain answer instead of JSON (its description)
    parameters: list[dict[str, Any]] = field(default_factory=list)
    examples: dict[str, dict[str, Any]] = field(default_factory=dict)  # JSON request bodies, by name
    errors: tuple[int, ...] = ()
    security: list[dict[str, list[str]]] | None = None  # None: no credentials
    multipart_only: bool = False  # the request is only the multipart form (no JSON body)
    raw_body: dict[str, Any] | None = None  # a request body that is a file itself (any content type)
    alternatives: tuple[type[BaseModel], ...] = ()  # other JSON answers than `response` (by a request field)
    request_alternatives: tuple[type[BaseModel], ...] = ()  # other JSON bodies than `request` (by the model's task)
    done: bool = True  # an event stream ends with `data: [DONE]` (OpenAI's; TGI's streams just end)
    tag: str | None = None  # the group the operation is listed under (TAGS)


_V1: list[dict[str, list[str]]] = [{"bearer": []}]
def _image_form(fields: dict[str, Any]) -> dict[str, Any]:
    """A multipart form of image file parts plus the route's other fields (`model` and `fields`)."""
    return {
        "type": "object",
        "description": "One or more image files (under `image` or any other part name; their order is kept), "
                       f"and the optional fields `model`, {', '.join(f'`{name}`' for name in fields)}.",
        "properties": {"model": {"type": "string"}, **fields,
                       "image": {"type": "array", "items": _FILE, "minItems": 1}},
        "additionalProperties": _FILE,
    }


_IMAGE_FORM = _image_form({"top_k": {"type": "integer", "minimum": 1}, "explain": {"type": "boolean"},
                           "explain_overlay": {"type": "boolean"}})

_UNIT = {"type": "number", "minimum": 0, "maximum": 1}
_DETECTION_FORM = _image_form({"score_threshold": _UNIT, "iou_threshold": _UNIT,
                               "max_detections": {"type": "integer", "minimum": 1, "maximum": 1000}})

_AUDIO_FORMATS = {"type": "string", "enum": ["json", "text", "srt", "verbose_json", "vtt"], "default": "json"}
_AUDIO_COMMON = {"model": {"type": "string"}, "prompt": {"type": "string", "maxLength": 1000},
                 "temperature": {"type": "number", "minimum": 0, "maximum": 1}, "response_format": _AUDIO_FORMATS}


def _audio_form(fields: dict[str, Any], what: str) -> dict[str, Any]:
    return {"type": "object", "required": ["file"],
            "description": f"One audio file (WAV, FLAC, MP3, Ogg, WebM, M4A) under `file`, and the optional fields "
                           f"{what}. `json` and `verbose_json` answer JSON; `text`, `srt` and `vtt` answer text/plain.",
            "properties": {"file": _FILE, **_AUDIO_COMMON, **fields}, "additionalProperties": False}


_TRANSCRIPTION_FORM = _audio_form(
    {"language": {"type": "string", "pattern": "^[a-z]{2,3}$"},
     "timestamp_granularities[]": {"type": "array", "items": {"enum": ["segment", "word"]}},
     "stream": {"type": "boolean", "const": False}, "chunking_strategy": {"type": "string"}},
    "`model`, `language`, `prompt`, `temperature`, `response_format`, `timestamp_granularities[]`")
_TRANSLATION_FORM = _audio_form({}, "`model`, `prompt`, `temperature`, `response_format`")

_PNG_2X2 = ("iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGM8ISfHwMDAxMDAwMDAAAANBAEIfXHKZgAAAABJRU5E"
            "rkJggg==")
_CHAT = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Name a colour."}]
_MODEL_IN_PATH = {"name": "model", "in": "path", "required": True, "schema": {"type": "string"},
                  "description": "a configured model name, as listed by GET /v1/models"}

_ADMIN_ERRORS = (400, 401, 403, 404, 421, 429, 500, 503)
_KEY_ID = {"name": "key_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1},
           "description": "the key's id, as GET /v1/admin/keys lists it"}


def _query(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": {"type": "string", **schema},
            "description": description}


ADMIN_ROUTES: list[Route] = [
    Route("get", "/v1/admin/keys", "Every API key, revoked and expired ones too (never the keys themselves)",
          response=AdminKeyList, errors=_ADMIN_ERRORS, security=_V1, tag="admin"),
    Route("post", "/v1/admin/keys", "Create a key; the response is the only place the key itself appears",
          KeyCreate, CreatedKey, errors=(*_ADMIN_ERRORS, 409, 413), security=_V1, tag="admin",
          examples={"scoped": {"name": "team-a", "rpm": 60, "models": ["all-minilm-l6-v2"],
                               "tasks": ["embeddings"]}}),
    Route("patch", "/v1/admin/keys/{key_id}", "Change a key's limits and scopes (the fields sent; null: unlimited, "
          "or every model or task)", KeyUpdate, AdminKey, parameters=[_KEY_ID], errors=(*_ADMIN_ERRORS, 413),
          security=_V1, tag="admin", examples={"limits": {"rpm": 120, "cpm": 30.0}}),
    Route("delete", "/v1/admin/keys/{key_id}", "Revoke a key", response=AdminKey, parameters=[_KEY_ID],
          errors=_ADMIN_ERRORS, security=_V1, tag="admin"),
    Route("get", "/v1/admin/usage", "Usage per time bucket, key and model", response=AdminUsage,
          parameters=[_query("since", "only requests since this time (YYYY-MM-DD, an ISO time or unix seconds)"),
                      _query("until", "only requests before this time"),
                      _query("bucket", "the time bucket (UTC)", enum=["minute", "hour", "day"], default="hour"),
                      _query("key_id", "only this key, by its id", pattern="^[0-9]{1,10}$"),
                      _query("key_name", "only this key, by its name"),
                      _query("model", "only this model (its configured name)")],
          errors=_ADMIN_ERRORS, security=_V1, tag="admin"),
    Route("get", "/v1/admin/audit", "Changes to keys (create, update, revoke): who, from where, what and when; "
          "newest first", response=AuditList,
          parameters=[_query("since", "only changes since this time (YYYY-MM-DD, an ISO time or unix seconds)"),
                      _query("until", "only changes before this time"),
                      _query("key_id", "only changes to this key, by its id", pattern="^[0-9]{1,10}$"),
                      _query("limit", "at most this many (1-1000; default 100)", pattern="^[0-9]{1,4}$")],
          errors=_ADMIN_ERRORS, security=_V1, tag="admin"),
]

TAGS = [{"name": "admin", "description": "Managing keys, reading usage and the audit log; admin keys only "
                                         "(`maas-server keys create --admin`), everyone else gets 403 "
                                         "`admin_required`"}]

ROUTES: list[Route] = [
    Route("post", "/v1/completions", "Text completion (OpenAI shape); `stream: true` answers with server-sent events",
          s.CompletionRequest, s.Completion, events=s.Completion, errors=_POST_ERRORS, security=_V1,
          examples={"whole": {"prompt": "Once upon a time", "max_tokens": 8, "temperature": 0},
                    "streamed": {"prompt": ["Once upon a time", "Hello"], "max_tokens": 8, "n": 2, "logprobs": 2,
                                 "stream": True, "stream_options": {"include_usage": True}}}),
    Route("post", "/v1/responses", "OpenAI's Responses API for text (no stored state); `stream: true` answers with "
          "server-sent events (response.created ... response.completed)", s.ResponsesRequest, s.ResponseObject,
          events=s.ResponseEvent, errors=_POST_ERRORS, security=_V1,
          examples={"text": {"input": "What is the capital of France?", "max_output_tokens": 8,
                             "temperature": 0}}),
    Route("post", "/v1/chat/completions", "Chat completion (OpenAI shape); `stream: true` answers with server-sent "
          "events", s.ChatCompletionRequest, s.ChatCompletion, events=s.ChatCompletionChunk, errors=_POST_ERRORS,
          security=_V1,
          examples={"whole": {"messages": _CHAT, "max_tokens": 8, "logprobs": True, "top_logprobs": 2},
                    "streamed": {"messages": _CHAT, "max_tokens": 8, "seed": 7, "stream": True, "logprobs": True,
                                 "top_logprobs": 2, "stream_options": {"include_usage": True}}}),
    Route("post", "/v1/embeddings", "Embeddings (OpenAI shape)", s.EmbeddingRequest, s.EmbeddingList,
          errors=_POST_ERRORS, security=_V1,
          examples={"floats": {"input": ["a red car", "a blue boat"]},
                    "base64": {"input": "a red car", "encoding_format": "base64"}}),
    Route("post", "/v1/classify/text", "Text classification, zero-shot or with the model's labels",
          s.TextClassificationRequest, s.ClassificationList, errors=_POST_ERRORS, security=_V1,
          examples={"zero-shot": {"input": ["I love it", "I hate it"], "labels": ["positive", "negative"]}}),
    Route("post", "/v1/classify/image", "Image classification: multipart file parts, or JSON with base64 images",
          s.ImageClassificationRequest, s.ClassificationList, multipart=_IMAGE_FORM, errors=_POST_ERRORS,
          security=_V1, examples={"base64": {"image": _PNG_2X2, "top_k": 3},
                                  "data-url": {"image": [f"data:image/png;base64,{_PNG_2X2}"]}}),
    Route("post", "/v1/detect/objects", "Object detection: labelled boxes in the original image's pixels",
          s.DetectionRequest, s.ObjectDetectionList, multipart=_DETECTION_FORM, errors=_POST_ERRORS, security=_V1,
          examples={"base64": {"image": _PNG_2X2, "score_threshold": 0.3, "max_detections": 10}}),
    Route("post", "/v1/detect/faces", "Face detection: boxes, scores and five landmarks per face",
          s.DetectionRequest, s.FaceDetectionList, multipart=_DETECTION_FORM, errors=_POST_ERRORS, security=_V1,
          examples={"base64": {"image": _PNG_2X2}}),
    Route("post", "/v1/faces/embeddings", "Faces with a vector each, to tell whether two photos show one person",
          s.DetectionRequest, s.FaceDetectionList, multipart=_DETECTION_FORM, errors=_POST_ERRORS, security=_V1,
          examples={"base64": {"image": _PNG_2X2}}),
    Route("post", "/v1/entities", "Named entities with character offsets, as spans or per token",
          s.EntityRequest, s.EntityList, errors=_POST_ERRORS, security=_V1,
          examples={"spans": {"input": "Angela Merkel visited Paris in 2019."},
                    "tokens": {"input": ["Apple opened an office in Berlin.", "No names here."],
                               "aggregation": "none"}}),
    Route("post", "/v1/audio/transcriptions", "Speech to text (OpenAI shape): multipart audio; long audio is cut in "
          "its silences", s.TranscriptionRequest, s.TranscriptionVerbose, multipart=_TRANSCRIPTION_FORM,
          text="the transcript (`text`), or subtitles (`srt`, `vtt`)", multipart_only=True, errors=_POST_ERRORS,
          security=_V1, alternatives=(s.Transcription,)),
    Route("post", "/v1/audio/translations", "Speech in any language to English text (OpenAI shape); a model that "
          "cannot translate answers 400 `translation_unsupported`", s.TranslationRequest, s.TranscriptionVerbose,
          multipart=_TRANSLATION_FORM, text="the translation (`text`), or subtitles (`srt`, `vtt`)",
          multipart_only=True, errors=_POST_ERRORS, security=_V1, alternatives=(s.Transcription,)),
    Route("post", "/models/{model}", "Hugging Face's inference shapes, as huggingface_hub's InferenceClient("
          "base_url=.../models/NAME) sends them: the task is the named model's (text generation with TGI's "
          "parameters, feature extraction, zero-shot and text classification, token classification, image "
          "classification, object and face detection, speech recognition); image and audio files may be the body "
          "itself", hf.TGIRequest, hf.TGIGeneratedList, events=hf.TGIStreamEvent, done=False,
          request_alternatives=hf.HF_REQUESTS[1:], alternatives=hf.HF_ANSWERS[1:], raw_body=_FILE,
          parameters=[_MODEL_IN_PATH], errors=_POST_ERRORS, security=_V1),
    Route("post", "/models/{model}/generate", "Text generation in text-generation-inference's shape",
          hf.TGIRequest, hf.TGIGenerated, parameters=[_MODEL_IN_PATH], errors=_POST_ERRORS, security=_V1),
    Route("post", "/models/{model}/generate_stream", "Text generation in text-generation-inference's shape, as "
          "server-sent events (the last carries the whole text and details)", hf.TGIRequest, events=hf.TGIStreamEvent,
          done=False, parameters=[_MODEL_IN_PATH], errors=_POST_ERRORS, security=_V1),
    Route("post", "/models/{model}/embed", "Embeddings in text-embeddings-inference's shape: one vector per input",
          hf.HFFeatureExtractionRequest, hf.HFVectors, parameters=[_MODEL_IN_PATH], errors=_POST_ERRORS,
          security=_V1),
    Route("post", "/models/{model}/v1/chat/completions", "Chat completion with the model named in the URL (where "
          "huggingface_hub's chat_completion posts for a model URL); as /v1/chat/completions",
          s.ChatCompletionRequest, s.ChatCompletion, events=s.ChatCompletionChunk, parameters=[_MODEL_IN_PATH],
          errors=_POST_ERRORS, security=_V1),
    Route("get", "/v1/models", "List the served models", response=s.ModelList, errors=_GET_ERRORS, security=_V1),
    Route("get", "/v1/models/{model}", "One served model", response=s.ModelInfo,
          parameters=[{"name": "model", "in": "path", "required": True, "schema": {"type": "string"},
                       "description": "a configured model name, as listed by GET /v1/models"}],
          errors=(*_GET_ERRORS, 404), security=_V1),
    Route("get", "/v1/usage", "The caller's own usage per model", response=UsageReport,
          parameters=[{"name": "since", "in": "query", "required": False, "schema": {"type": "string"},
                       "description": "only requests since this time: YYYY-MM-DD, an ISO time or unix seconds"}],
          errors=_GET_ERRORS, security=_V1),
    Route("get", "/health", "Liveness: 200 while the process is alive", response=s.Health, errors=(400,)),
    Route("get", "/ready", "Readiness: 200 once every model is loaded and warmed, 503 before and while draining",
          response=s.Readiness, errors=(400,)),
    Route("get", "/metrics", "Prometheus metrics, summed over workers", text="Prometheus text exposition format",
          errors=(400, 401), security=[{"metricsToken": []}, {}]),
    Route("get", "/openapi.json", "This description", errors=(400,)),
    *ADMIN_ROUTES,
]


@bp.get("/openapi.json")
def openapi() -> Any:
    return build_openapi()


def build_openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document for ROUTES."""
    paths: dict[str, Any] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {"title": "maas", "version": __version__,
                 "description": "Model-as-a-Service: OpenAI-compatible completions, chat, embeddings and models; "
                                "classification for text and images; named entities. Every error is the JSON "
                                "envelope `{\"error\": {\"type\", \"message\", \"param\", \"code\"}}`."},
        "paths": paths,
        "tags": TAGS,
        "components": {"schemas": _component_schemas(), "headers": _HEADERS, "securitySchemes": _SECURITY_SCHEMES},
    }


def _component_schemas() -> dict[str, Any]:
    models = {m for r in ROUTES for m in (r.request, r.response, r.events, *r.alternatives, *r.request_alternatives)
              if m is not None}
    models |= {s.ErrorResponse, hf.TGIStreamError}
    _, schemas = models_json_schema([(m, "validation") for m in sorted(models, key=lambda m: m.__name__)],
                                    ref_template=_REF)
    return schemas.get("$defs", {})  # type: ignore[no-any-return]


def _operation(route: Route) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": route.summary, "responses": _responses(route)}
    if route.tag is not None:
        op["tags"] = [route.tag]
    parameters = route.parameters + ([_REQUEST_TIMEOUT] if route.request is not None or route.raw_body else [])
    if parameters:
        op["parameters"] = parameters
    if route.request is not None:
        content = {} if route.multipart_only else _json(route.request, *route.request_alternatives)
        if route.examples:
            content["application/json"]["examples"] = {name: {"value": value} for name, value in route.examples.items()}
        if route.multipart is not None:
            content["multipart/form-data"] = {"schema": route.multipart}
        op["requestBody"] = {"required": True, "content": content}
    if route.raw_body is not None:
        body = op.setdefault("requestBody", {"required": True, "content": {}})
        body["content"]["application/octet-stream"] = {"schema": route.raw_body}
    op["security"] = route.security if route.security is not None else []
    return op


def _responses(route: Route) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": "OK", "headers": {"X-Request-ID": {"$ref": "#/components/headers/RequestId"}}}
    if route.response is not None:
        ok["content"] = _json(route.response, *route.alternatives)
        if route.text is not None:
            ok["content"]["text/plain"] = {"schema": {"type": "string", "description": route.text}}
    elif route.text is not None:
        ok["content"] = {"text/plain": {"schema": {"type": "string", "description": route.text}}}
    elif route.events is None:
        ok["content"] = {"application/json": {"schema": {"type": "object"}}}
    if route.events is not None:
        ok.setdefault("content", {})["text/event-stream"] = {"schema": _event(route.events, route.done)}
    responses = {"200": ok}
    if route.response is s.Readiness:  # /ready answers 503 with the same body, not the error envelope
        responses["503"] = {"description": "Not ready yet, or draining", "content": _json(s.Readiness)}
    for status in route.errors:
        responses[str(status)] = _error(status)
    return responses


def _error(status: int) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": _ERRORS[status], "content": _json(s.ErrorResponse),
                              "headers": {"X-Request-ID": {"$ref": "#/components/headers/RequestId"}}}
    if status in _RETRY_AFTER:
        answer["headers"]["Retry-After"] = {"$ref": "#/components/headers/RetryAfter"}
    return answer


def _json(model: type[BaseModel], *alternatives: type[BaseModel]) -> dict[str, Any]:
    refs = [{"$ref": _REF.format(model=m.__name__)} for m in (model, *alternatives)]
    return {"application/json": {"schema": {"anyOf": refs} if alternatives else refs[0]}}


def _event(chunk: type[BaseModel], done: bool) -> dict[str, Any]:
    error = s.ErrorResponse if done else hf.TGIStreamError  # TGI's streams end with its own error shape
    """One server-sent event: a JSON chunk, an error after the stream began, or the final [DONE]."""
    json_data = {"type": "string", "contentMediaType": "application/json",
                 "contentSchema": {"anyOf": [{"$ref": _REF.format(model=chunk.__name__)},
                                             {"$ref": _REF.format(model=error.__name__)}]}}
    last = ", and last `data: [DONE]`" if done else ""
    return {"type": "object", "required": ["data"],
            "description": f"One event: `data: <{chunk.__name__} JSON>` for each piece of text, "
                           f"`data: {{\"error\": ...}}` when generation fails after the stream began{last}.",
            "properties": {"data": {"anyOf": [{"const": "[DONE]"}, json_data] if done else [json_data]}}}


_HEADERS = {
    "RequestId": {"description": "The client's X-Request-ID, echoed, or a new one; it names the request's log line",
                  "required": True, "schema": {"type": "string"}},
    "RetryAfter": {"description": "Seconds to wait before retrying", "required": True,
                   "schema": {"type": "string", "pattern": "^[0-9]+$"}},
}
_SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer",
               "description": "An API key from `maas-server keys create`, as `Authorization: Bearer <key>` (never in "
                              "the URL). Whether a call may omit it is the server's auth mode (MAAS_AUTH)."},
    "metricsToken": {"type": "http", "scheme": "bearer",
                     "description": "$MAAS_METRICS_TOKEN; needed only when the server sets it"},
}
