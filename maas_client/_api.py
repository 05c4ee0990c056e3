"""One request builder per endpoint, shared by :class:`Client` and :class:`AsyncClient`.

Each function states what is particular to its endpoint (path, body, how to read the answer)
and returns an :class:`APIRequest` or a :class:`StreamRequest`; it does no I/O (files and images
given as paths are read here, as the request is built). Both clients' methods are one call to
the builder and one to their transport, so an endpoint is written once.
"""

from __future__ import annotations

import io
import mimetypes
import os
import re
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import IO, Any, Literal, Protocol, TypedDict, TypeVar, cast, overload
from urllib.parse import quote

from pydantic import BaseModel, ValidationError

from ._base_client import (
    MODELS,
    APIRequest,
    FilePart,
    RequestOptions,
    StreamRequest,
    TimeoutTypes,
    returning,
    returning_then,
)
from .errors import MaasError, StructuredOutputError
from .types import (
    AdminKey,
    AdminKeyList,
    AdminUsage,
    AuditEntry,
    AuditList,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessage,
    Classification,
    Completion,
    CompletionChunk,
    CompletionRequest,
    CreatedKey,
    DetectionRequest,
    EmbeddingRequest,
    Embeddings,
    Entities,
    EntityRequest,
    FaceComparison,
    FaceDetections,
    ImageClassificationRequest,
    ModelInfo,
    ModelList,
    ObjectDetections,
    PiiRequest,
    PiiResults,
    ResponseEvent,
    ResponseObject,
    ResponsesRequest,
    RoleLabellings,
    RoleRequest,
    Scenes,
    TextClassificationRequest,
    TextReadingRequest,
    TextReadings,
    Tool,
    Transcription,
    UsageReport,
)

COMPLETIONS = "/v1/completions"
CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
EMBEDDINGS = "/v1/embeddings"
CLASSIFY_TEXT = "/v1/classify/text"
CLASSIFY_IMAGE = "/v1/classify/image"
ENTITIES = "/v1/entities"
PII = "/v1/pii"
DETECT_OBJECTS = "/v1/detect/objects"
DETECT_FACES = "/v1/detect/faces"
EMBED_FACES = "/v1/faces/embeddings"
OCR = "/v1/ocr"
SRL = "/v1/srl"
CLASSIFY_SCENE = "/v1/classify/scene"
EMBED_IMAGES = "/v1/images/embeddings"
TRANSCRIPTIONS = "/v1/audio/transcriptions"
TRANSLATIONS = "/v1/audio/translations"
USAGE = "/v1/usage"
ADMIN_KEYS = "/v1/admin/keys"
ADMIN_USAGE = "/v1/admin/usage"
ADMIN_AUDIT = "/v1/admin/audit"
SAME_PERSON = 0.6  # dlib's threshold for its 128-d face vectors (the default face-embedding model)


class _SavableImage(Protocol):
    """What the client needs of a ``PIL.Image.Image`` (typed without importing PIL)."""

    def save(self, fp: IO[bytes], format: str | None = None) -> None: ...


ImageInput = str | os.PathLike[str] | bytes | bytearray | IO[bytes] | _SavableImage
# A path, bytes, a binary file object, or a numpy array of samples (typed Any: numpy is not imported).
AudioInput = str | os.PathLike[str] | bytes | bytearray | IO[bytes] | Any
MessageInput = ChatMessage | Mapping[str, Any]
ToolInput = Tool | Mapping[str, Any]
ResponseFormat = Mapping[str, Any] | type[BaseModel]
P = TypeVar("P", bound=BaseModel)


# ---------------------------------------------------------------------- the options of each method
# Declared once as TypedDicts (PEP 692): both clients' methods take them as ``**options``, so a
# type checker and an IDE see every keyword with its type, and the two clients cannot drift.


class CallOptions(TypedDict, total=False):
    """What every method takes: ``timeout`` (seconds, ``(connect, read)`` or a Timeout) for this call,
    ``extra_headers`` to add or override, ``extra_body`` fields merged over the method's own (JSON body or
    form), for server features this client has no argument for."""

    timeout: TimeoutTypes | None
    extra_headers: Mapping[str, str] | None
    extra_body: Mapping[str, Any] | None


class GetOptions(TypedDict, total=False):
    """What the ``GET`` methods take: as :class:`CallOptions`, with ``extra_query`` instead of a body."""

    timeout: TimeoutTypes | None
    extra_headers: Mapping[str, str] | None
    extra_query: Mapping[str, str] | None


class ModelOptions(CallOptions, total=False):
    model: str | None


class _Sampling(ModelOptions, total=False):
    max_tokens: int | None
    temperature: float | None
    top_p: float | None
    seed: int | None


class GenerateOptions(_Sampling, total=False):
    n: int | None
    stop: str | Sequence[str] | None
    logprobs: int | None
    stream_options: Mapping[str, Any] | None


class ParseOptions(_Sampling, total=False):
    pass


class ChatOptions(_Sampling, total=False):
    n: int | None
    stop: str | Sequence[str] | None
    logprobs: bool | None
    top_logprobs: int | None
    tools: Sequence[ToolInput] | None
    tool_choice: str | Mapping[str, Any] | None
    response_format: ResponseFormat | None
    stream_options: Mapping[str, Any] | None


class ResponseOptions(ModelOptions, total=False):
    instructions: str | None
    max_output_tokens: int | None
    temperature: float | None
    top_p: float | None
    tools: Sequence[ToolInput] | None
    tool_choice: str | Mapping[str, Any] | None
    response_format: ResponseFormat | None


class TranslateOptions(CallOptions, total=False):
    sample_rate: int | None
    prompt: str | None
    temperature: float | None


class TranscribeOptions(TranslateOptions, total=False):
    language: str | None
    words: bool


def _request_options(options: CallOptions | GetOptions) -> RequestOptions:
    given = cast(Mapping[str, Any], options)
    return RequestOptions(timeout=given.get("timeout"), extra_headers=given.get("extra_headers"),
                          extra_body=given.get("extra_body"), extra_query=given.get("extra_query"))


# ---------------------------------------------------------------------- text generation


def generate(
    prompt: str | Sequence[str], stream: bool, o: GenerateOptions
) -> APIRequest[Completion] | StreamRequest[CompletionChunk]:
    stream_options = o.get("stream_options")
    body = CompletionRequest(
        model=o.get("model"), prompt=_str_or_list(prompt), max_tokens=o.get("max_tokens"),
        temperature=o.get("temperature"), top_p=o.get("top_p"), n=o.get("n"), stop=_str_or_list(o.get("stop")),
        seed=o.get("seed"), logprobs=o.get("logprobs"), stream=stream or None,
        stream_options=dict(stream_options) if stream_options else None,
    ).to_body()
    if stream:
        return StreamRequest(path=COMPLETIONS, json=body, model_route=COMPLETIONS, options=_request_options(o),
                             parse=returning(CompletionChunk))
    return APIRequest(method="POST", path=COMPLETIONS, json=body, model_route=COMPLETIONS,
                      options=_request_options(o), parse=returning(Completion))


def chat(
    messages: str | Sequence[MessageInput], stream: bool, o: ChatOptions
) -> APIRequest[ChatCompletion] | StreamRequest[ChatCompletionChunk]:
    tools, tool_choice, stream_options = o.get("tools"), o.get("tool_choice"), o.get("stream_options")
    body = ChatCompletionRequest(
        model=o.get("model"), messages=_messages(messages), max_tokens=o.get("max_tokens"),
        temperature=o.get("temperature"), top_p=o.get("top_p"), n=o.get("n"), stop=_str_or_list(o.get("stop")),
        seed=o.get("seed"), logprobs=o.get("logprobs"), top_logprobs=o.get("top_logprobs"),
        tools=[_tool(t) for t in tools] if tools is not None else None,
        tool_choice=tool_choice if tool_choice is None or isinstance(tool_choice, str) else dict(tool_choice),
        response_format=_chat_format(o.get("response_format")), stream=stream or None,
        stream_options=dict(stream_options) if stream_options else None,
    ).to_body()
    if stream:
        return StreamRequest(path=CHAT, json=body, model_route=CHAT, options=_request_options(o),
                             parse=returning(ChatCompletionChunk))
    return APIRequest(method="POST", path=CHAT, json=body, model_route=CHAT, options=_request_options(o),
                      parse=returning(ChatCompletion))


def chat_parse(messages: str | Sequence[MessageInput], response_format: type[P], o: ParseOptions) -> APIRequest[P]:
    body = ChatCompletionRequest(
        model=o.get("model"), messages=_messages(messages), max_tokens=o.get("max_tokens"),
        temperature=o.get("temperature"), top_p=o.get("top_p"), seed=o.get("seed"),
        response_format=_chat_format(response_format),
    ).to_body()
    return APIRequest(method="POST", path=CHAT, json=body, model_route=CHAT, options=_request_options(o),
                      parse=returning_then(ChatCompletion, lambda reply: parse_reply(reply, response_format)))


def parse_reply(reply: ChatCompletion, model: type[P]) -> P:
    """The reply's text validated as ``model``; :class:`StructuredOutputError` says why not."""
    finish = reply.choices[0].finish_reason if reply.choices else None
    try:
        return model.model_validate_json(reply.text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the reply"
        hint = ("generation stopped at max_tokens before the JSON was complete: raise max_tokens"
                if finish == "length" else "the server did not hold the output to the schema")
        raise StructuredOutputError(
            f"the reply is not a valid {model.__name__} ({exc.error_count()} error(s); {where}: {first['msg']}); "
            f"{hint}. The text is on this error's .text.",
            text=reply.text, finish_reason=finish, completion=reply, errors=exc.errors(),
            request_id=reply.request_id,
        ) from exc


def create_response(
    input: str | Sequence[Mapping[str, Any]], stream: bool, o: ResponseOptions
) -> APIRequest[ResponseObject] | StreamRequest[ResponseEvent]:
    tools, tool_choice = o.get("tools"), o.get("tool_choice")
    text_format = _chat_format(o.get("response_format"))
    if text_format is not None:  # the Responses API has json_schema's fields beside "type"
        text_format.update(text_format.pop("json_schema", None) or {})
    body = ResponsesRequest(
        model=o.get("model"), input=input if isinstance(input, str) else [dict(item) for item in input],
        instructions=o.get("instructions"), max_output_tokens=o.get("max_output_tokens"),
        temperature=o.get("temperature"), top_p=o.get("top_p"),
        text={"format": text_format} if text_format else None,
        tools=[_flat_tool(t) for t in tools] if tools is not None else None,
        tool_choice=tool_choice if tool_choice is None or isinstance(tool_choice, str) else dict(tool_choice),
        stream=stream or None,
    ).to_body()
    if stream:
        return StreamRequest(path=RESPONSES, json=body, model_route=RESPONSES, options=_request_options(o),
                             parse=returning(ResponseEvent))
    return APIRequest(method="POST", path=RESPONSES, json=body, model_route=RESPONSES, options=_request_options(o),
                      parse=returning(ResponseObject))


# ---------------------------------------------------------------------- embeddings, classification, entities


def embed(input: str | Sequence[str], o: ModelOptions) -> APIRequest[Embeddings]:
    body = EmbeddingRequest(model=o.get("model"), input=_str_or_list(input)).to_body()
    return APIRequest(method="POST", path=EMBEDDINGS, json=body, model_route=EMBEDDINGS, options=_request_options(o),
                      parse=returning(Embeddings))


def classify_text(
    input: str | Sequence[str], labels: Sequence[str] | None, top_k: int | None, model: str | None, explain: bool,
    o: CallOptions,
) -> APIRequest[Classification]:
    # No model_route: without a model the server picks the one that fits (zero-shot with labels).
    body = TextClassificationRequest(model=model, input=_str_or_list(input),
                                     labels=list(labels) if labels is not None else None, top_k=top_k,
                                     explain=explain or None).to_body()
    return APIRequest(method="POST", path=CLASSIFY_TEXT, json=body, options=_request_options(o),
                      parse=returning(Classification))


def classify_image(
    images: ImageInput | Sequence[ImageInput], top_k: int | None, model: str | None, explain: bool, overlay: bool,
    o: CallOptions,
) -> APIRequest[Classification]:
    form = ImageClassificationRequest(model=model, top_k=top_k, explain=explain or None,
                                      explain_overlay=overlay or None).to_form()
    files: list[FilePart] = [("image", part) for part in _image_parts(images)]
    return APIRequest(method="POST", path=CLASSIFY_IMAGE, form=form, files=files, model_route=CLASSIFY_IMAGE,
                      options=_request_options(o), parse=returning(Classification))


def extract_entities(
    input: str | Sequence[str], model: str | None, aggregation: Literal["simple", "none"], o: CallOptions
) -> APIRequest[Entities]:
    body = EntityRequest(model=model, input=_str_or_list(input), aggregation=aggregation).to_body()
    texts = [input] if isinstance(input, str) else list(input)
    return APIRequest(method="POST", path=ENTITIES, json=body, model_route=ENTITIES, options=_request_options(o),
                      parse=returning_then(Entities, lambda found: found._with_texts(texts)))


def find_pii(
    input: str | Sequence[str], types: Sequence[str] | None, score_threshold: float | None,
    redact: Literal["type", "mask"] | None, mask_char: str | None, include_text: bool, model: str | None,
    o: CallOptions,
) -> APIRequest[PiiResults]:
    body = PiiRequest(model=model, input=_str_or_list(input), types=list(types) if types is not None else None,
                      score_threshold=score_threshold, redact=redact, mask_char=mask_char,
                      include_text=include_text or None).to_body()
    return APIRequest(method="POST", path=PII, json=body, model_route=PII, options=_request_options(o),
                      parse=returning(PiiResults))


# ---------------------------------------------------------------------- objects and faces

D = TypeVar("D", ObjectDetections, FaceDetections)  # what the detection routes answer


def detect(
    route: str, result: type[D], images: ImageInput | Sequence[ImageInput], score_threshold: float | None,
    iou_threshold: float | None, max_detections: int | None, model: str | None, o: CallOptions,
) -> APIRequest[D]:
    """Upload the images with the form; the result keeps them (in memory) for its notebook view."""
    form = DetectionRequest(model=model, score_threshold=score_threshold, iou_threshold=iou_threshold,
                            max_detections=max_detections).to_form()
    parts = _image_parts(images)

    def attach(found: D) -> D:
        found._attach_images([(content, content_type) for _, content, content_type in parts])
        return found

    return APIRequest(method="POST", path=route, form=form, files=[("image", part) for part in parts],
                      model_route=route, options=_request_options(o), parse=returning_then(result, attach))


def read_text(images: ImageInput | Sequence[ImageInput], score_threshold: float | None, model: str | None,
              o: CallOptions) -> APIRequest[TextReadings]:
    """Upload the images with the form; the result keeps them (in memory) for its notebook view."""
    form = TextReadingRequest(model=model, score_threshold=score_threshold).to_form()
    parts = _image_parts(images)

    def attach(found: TextReadings) -> TextReadings:
        found._attach_images([(content, content_type) for _, content, content_type in parts])
        return found

    return APIRequest(method="POST", path=OCR, form=form, files=[("image", part) for part in parts],
                      model_route=OCR, options=_request_options(o), parse=returning_then(TextReadings, attach))


def label_roles(input: str | Sequence[str], model: str | None, o: CallOptions) -> APIRequest[RoleLabellings]:
    body = RoleRequest(model=model, input=_str_or_list(input)).to_body()
    return APIRequest(method="POST", path=SRL, json=body, model_route=SRL, options=_request_options(o),
                      parse=returning(RoleLabellings))


def classify_scene(images: ImageInput | Sequence[ImageInput], model: str | None,
                   o: CallOptions) -> APIRequest[Scenes]:
    # No model_route: without a model the server picks a scene model, or its classifier and detector.
    form = [("model", model)] if model else []
    files: list[FilePart] = [("image", part) for part in _image_parts(images)]
    return APIRequest(method="POST", path=CLASSIFY_SCENE, form=form, files=files, options=_request_options(o),
                      parse=returning(Scenes))


def embed_images(images: ImageInput | Sequence[ImageInput], model: str | None,
                 o: CallOptions) -> APIRequest[Embeddings]:
    form = [("model", model)] if model else []
    files: list[FilePart] = [("image", part) for part in _image_parts(images)]
    return APIRequest(method="POST", path=EMBED_IMAGES, form=form, files=files, model_route=EMBED_IMAGES,
                      options=_request_options(o), parse=returning(Embeddings))


def compare_faces(
    a: ImageInput, b: ImageInput, threshold: float, model: str | None, o: CallOptions
) -> APIRequest[FaceComparison]:
    """One call to the face-embedding route with both images; the comparison is computed here."""

    def compare(found: FaceDetections) -> FaceComparison:
        faces = {item.index: item.faces for item in found.data}
        missing = [name for index, name in enumerate("ab") if not faces.get(index)]
        if missing:
            raise MaasError(f"no face found in image {' or '.join(missing)}; nothing to compare")
        face_a, face_b = faces[0][0], faces[1][0]
        distance = face_a.distance(face_b)
        result = FaceComparison(distance=distance, threshold=threshold, same_person=distance < threshold,
                                a=face_a, b=face_b)
        result._stamp(found.request_id)
        return result

    form = DetectionRequest(model=model).to_form()
    return APIRequest(method="POST", path=EMBED_FACES, form=form, files=[("image", p) for p in _image_parts([a, b])],
                      model_route=EMBED_FACES, options=_request_options(o),
                      parse=returning_then(FaceDetections, compare))


# ---------------------------------------------------------------------- models, usage


def models(o: GetOptions) -> APIRequest[list[ModelInfo]]:
    return APIRequest(method="GET", path=MODELS, options=_request_options(o),
                      parse=returning_then(ModelList, lambda listing: listing.data))


def model(name: str, o: GetOptions) -> APIRequest[ModelInfo]:
    return APIRequest(method="GET", path=f"{MODELS}/{quote(name, safe='/')}", options=_request_options(o),
                      parse=returning(ModelInfo))


def usage(since: str | float | datetime | None, o: GetOptions) -> APIRequest[UsageReport]:
    params = None if since is None else {"since": since.isoformat() if isinstance(since, datetime) else str(since)}
    return APIRequest(method="GET", path=USAGE, params=params, options=_request_options(o),
                      parse=returning(UsageReport))


# ---------------------------------------------------------------------- admin API (admin keys only)


class KeySettings(TypedDict, total=False):
    """A key's limits and scopes, as :meth:`Client.admin_create_key` and ``admin_update_key`` take them:
    ``rpm``/``tpm``/``cpm`` per minute (requests, tokens, compute seconds), ``models``/``tasks`` it may
    use, ``admin``, ``zero_retention`` (nothing its requests carry is logged or stored). In an update,
    ``None`` lifts a limit or a scope; a field left out is kept."""

    rpm: int | None
    tpm: int | None
    cpm: float | None
    models: Sequence[str] | None
    tasks: Sequence[str] | None
    admin: bool
    zero_retention: bool


class KeyCreateOptions(KeySettings, CallOptions, total=False):
    expires_at: str | float | datetime | None


class KeyUpdateOptions(KeySettings, CallOptions, total=False):
    pass


_SETTINGS = ("rpm", "tpm", "cpm", "models", "tasks", "admin", "zero_retention")


def _settings(o: Mapping[str, Any]) -> dict[str, Any]:
    return {k: list(v) if k in ("models", "tasks") and v is not None else v for k, v in o.items() if k in _SETTINGS}


def admin_keys(o: GetOptions) -> APIRequest[list[AdminKey]]:
    return APIRequest(method="GET", path=ADMIN_KEYS, options=_request_options(o),
                      parse=returning_then(AdminKeyList, lambda listing: listing.data))


def admin_create_key(name: str, o: KeyCreateOptions) -> APIRequest[CreatedKey]:
    body: dict[str, Any] = {"name": name, **_settings(o)}
    expires_at = o.get("expires_at")
    if expires_at is not None:
        body["expires_at"] = _time_text(expires_at)
    return APIRequest(method="POST", path=ADMIN_KEYS, json=body, options=_request_options(o),
                      parse=returning(CreatedKey))


def admin_update_key(key_id: int, o: KeyUpdateOptions) -> APIRequest[AdminKey]:
    return APIRequest(method="PATCH", path=f"{ADMIN_KEYS}/{int(key_id)}", json=_settings(o),
                      options=_request_options(o), parse=returning(AdminKey))


def admin_revoke_key(key_id: int, o: CallOptions) -> APIRequest[AdminKey]:
    return APIRequest(method="DELETE", path=f"{ADMIN_KEYS}/{int(key_id)}", options=_request_options(o),
                      parse=returning(AdminKey))


def admin_usage(since: str | float | datetime | None, until: str | float | datetime | None,
                bucket: Literal["minute", "hour", "day"], key_id: int | None, key_name: str | None,
                model: str | None, o: GetOptions) -> APIRequest[AdminUsage]:
    params = _params(since=since, until=until, bucket=bucket, key_id=key_id, key_name=key_name, model=model)
    return APIRequest(method="GET", path=ADMIN_USAGE, params=params, options=_request_options(o),
                      parse=returning(AdminUsage))


def admin_audit(since: str | float | datetime | None, until: str | float | datetime | None, key_id: int | None,
                limit: int | None, o: GetOptions) -> APIRequest[list[AuditEntry]]:
    params = _params(since=since, until=until, key_id=key_id, limit=limit)
    return APIRequest(method="GET", path=ADMIN_AUDIT, params=params, options=_request_options(o),
                      parse=returning_then(AuditList, lambda listing: listing.data))


def _params(**values: Any) -> dict[str, str]:
    return {name: _time_text(v) if name in ("since", "until") else str(v) for name, v in values.items()
            if v is not None}


def _time_text(value: str | float | datetime) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


# ---------------------------------------------------------------------- speech


def transcribe(audio: Any, model: str | None, o: TranscribeOptions) -> APIRequest[Transcription]:
    granularities = ["segment", "word"] if o.get("words") else ["segment"]
    return _speech(TRANSCRIPTIONS, audio, model, o, language=o.get("language"), granularities=granularities)


def translate(audio: Any, model: str | None, o: TranslateOptions) -> APIRequest[Transcription]:
    return _speech(TRANSLATIONS, audio, model, o, language=None, granularities=[])


def _speech(route: str, audio: Any, model: str | None, o: TranslateOptions, language: str | None,
            granularities: list[str]) -> APIRequest[Transcription]:
    """A transcription or translation, always as ``verbose_json`` (timed segments)."""
    filename, content = _audio_part(audio, o.get("sample_rate"))
    temperature = o.get("temperature")
    fields = {"model": model, "response_format": "verbose_json", "language": language,
              "prompt": o.get("prompt"), "temperature": None if temperature is None else str(temperature)}
    form = [(k, v) for k, v in fields.items() if v is not None]
    form += [("timestamp_granularities[]", granularity) for granularity in granularities]
    return APIRequest(method="POST", path=route, form=form,
                      files=[("file", (filename, content, "application/octet-stream"))],
                      model_route=route, options=_request_options(o), parse=returning(Transcription))


# ---------------------------------------------------------------------- argument helpers


@overload
def _str_or_list(value: str | Sequence[str]) -> str | list[str]: ...


@overload
def _str_or_list(value: None) -> None: ...


def _str_or_list(value: str | Sequence[str] | None) -> str | list[str] | None:
    # Tuples and other sequences become lists, so the JSON body is always a string or array.
    return value if value is None or isinstance(value, str) else list(value)


def _messages(messages: str | Sequence[MessageInput]) -> list[ChatMessage]:
    if isinstance(messages, str):
        return [ChatMessage(role="user", content=messages)]
    return [m if isinstance(m, ChatMessage) else ChatMessage.model_validate(m) for m in messages]


def _tool(tool: ToolInput) -> Tool:
    return tool if isinstance(tool, Tool) else Tool.model_validate(tool)


def _flat_tool(tool: ToolInput) -> dict[str, Any]:
    """A tool in the Responses API's flat shape (``name`` beside ``type``); chat's shape is flattened."""
    given = tool.model_dump(exclude_none=True) if isinstance(tool, Tool) else dict(tool)
    function = given.pop("function", None)
    return {**given, **function} if isinstance(function, dict) else given


def _chat_format(value: ResponseFormat | None) -> dict[str, Any] | None:
    """``response_format``: OpenAI's dict as given, or a pydantic model class as its JSON schema."""
    if value is None:
        return None
    if isinstance(value, type):
        name = re.sub(r"[^A-Za-z0-9_-]", "_", value.__name__)[:64]
        return {"type": "json_schema",
                "json_schema": {"name": name, "schema": value.model_json_schema(), "strict": True}}
    return dict(value)


def _audio_part(audio: Any, sample_rate: int | None) -> tuple[str, bytes]:
    """An audio file's name and bytes; a numpy array of samples becomes a float32 WAV file."""
    if isinstance(audio, (str, os.PathLike)):
        with open(os.fspath(audio), "rb") as file:
            return os.path.basename(os.fspath(audio)), file.read()
    if isinstance(audio, (bytes, bytearray, memoryview)):
        return "audio", bytes(audio)
    if hasattr(audio, "read"):
        content = audio.read()
        if not isinstance(content, bytes):
            raise TypeError("open audio files in binary mode ('rb'), not text mode")
        name = getattr(audio, "name", None)
        return (os.path.basename(name) if isinstance(name, str) else "audio"), content
    if hasattr(audio, "__array__"):
        if not sample_rate:
            raise ValueError("pass sample_rate= with an array of samples (e.g. 16000)")
        return "audio.wav", _float_wav(audio, sample_rate)
    raise TypeError(f"cannot send a {type(audio).__name__} as audio: pass a path, bytes, a binary file object, "
                    "or a numpy array with its sample_rate")


def _float_wav(samples: Any, sample_rate: int) -> bytes:
    """A WAV file of 32-bit float samples (lossless for what numpy holds); numpy is the caller's, imported here."""
    import struct

    import numpy as np

    array = np.asarray(samples, dtype="<f4")
    channels = 1 if array.ndim == 1 else array.shape[-1]
    if array.ndim > 2 or array.size == 0:
        raise ValueError("audio samples must be a non-empty 1-D array (mono) or 2-D (samples x channels)")
    data = array.tobytes()
    header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + len(data), b"WAVE", b"fmt ", 16, 3, channels,
                         sample_rate, sample_rate * channels * 4, channels * 4, 32, b"data", len(data))
    return header + data


def _image_parts(images: ImageInput | Sequence[ImageInput]) -> list[tuple[str, bytes, str]]:
    """Each image as a multipart ``(filename, bytes, content type)``, in the given order."""
    if isinstance(images, (list, tuple)):
        return [_image_part(image, number) for number, image in enumerate(images)]
    return [_image_part(images, 0)]  # type: ignore[arg-type]  # a single ImageInput


def _image_part(image: ImageInput, number: int) -> tuple[str, bytes, str]:
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        with open(path, "rb") as file:
            content = file.read()
        return os.path.basename(path), content, _content_type(content, path)
    if isinstance(image, (bytes, bytearray, memoryview)):
        content = bytes(image)
        return f"image{number}", content, _content_type(content)
    if _is_pil_image(image):
        buffer = io.BytesIO()
        cast(_SavableImage, image).save(buffer, format="PNG")  # lossless, and PNG keeps any mode PIL can hold
        return f"image{number}.png", buffer.getvalue(), "image/png"
    if hasattr(image, "read"):
        content = cast(IO[bytes], image).read()
        if not isinstance(content, bytes):
            raise TypeError("open image files in binary mode ('rb'), not text mode")
        name = getattr(image, "name", None)
        filename = os.path.basename(name) if isinstance(name, str) else f"image{number}"
        return filename, content, _content_type(content, filename)
    raise TypeError(
        f"cannot send a {type(image).__name__} as an image: pass a path, bytes, a binary "
        "file object or a PIL.Image.Image (or a list of them)"
    )


def _is_pil_image(image: object) -> bool:
    # Looked up, never imported: if PIL is not loaded, the object cannot be a PIL image.
    pil = sys.modules.get("PIL.Image")
    return pil is not None and isinstance(image, pil.Image)


_MAGIC = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF8", "image/gif"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)


def _content_type(content: bytes, filename: str | None = None) -> str:
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "image/webp"
    for magic, content_type in _MAGIC:
        if content.startswith(magic):
            return content_type
    guessed = mimetypes.guess_type(filename)[0] if filename else None
    return guessed or "application/octet-stream"

