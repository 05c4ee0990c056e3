"""The :class:`Client`: one object per server, one method per endpoint, on ``requests``.

Options come from the constructor's arguments, else the ``MAAS_*`` environment variables,
else the defaults. Each method is two calls: the endpoint's request builder (``_api.py``, shared
with :class:`~maas_client.AsyncClient`) and the transport (``_transport.py``), which does the
rest (headers, retries, errors, streaming).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Literal, TypeVar, Unpack, overload

import requests
from pydantic import BaseModel

from . import _api
from ._api import (
    SAME_PERSON,
    AudioInput,
    CallOptions,
    ChatOptions,
    GenerateOptions,
    GetOptions,
    ImageInput,
    KeyCreateOptions,
    KeyUpdateOptions,
    MessageInput,
    ModelOptions,
    ParseOptions,
    ResponseOptions,
    TranscribeOptions,
    TranslateOptions,
)
from ._base_client import (
    APIRequest,
    BaseClient,
    ClientOptions,
    StreamRequest,
    TimeoutTypes,
    configure_logging,
    default_model,
)
from ._response import RawMethod, RawResponse, RawStreamingMethod, _RawView
from ._streaming import Stream
from ._transport import SyncTransport, new_session
from .types import (
    AdminKey,
    AdminUsage,
    AuditEntry,
    ChatCompletion,
    ChatCompletionChunk,
    Classification,
    Completion,
    CompletionChunk,
    CreatedKey,
    Embeddings,
    Entities,
    FaceComparison,
    FaceDetections,
    ModelInfo,
    ObjectDetections,
    PiiResults,
    ResponseEvent,
    ResponseObject,
    RoleLabellings,
    Scenes,
    TextReadings,
    Transcription,
    UsageReport,
)

__all__ = ["Client", "ClientWithRawResponse", "ImageInput", "MessageInput"]

T = TypeVar("T")
P = TypeVar("P", bound=BaseModel)


class Client(BaseClient[SyncTransport]):
    """A client for one maas (or OpenAI-compatible) server.

    Args:
        base_url: the server, e.g. ``http://127.0.0.1:8000`` (a trailing ``/v1`` is fine).
            Default: ``MAAS_BASE_URL``, else ``http://127.0.0.1:8000``.
        api_key: sent as ``Authorization: Bearer <key>``. Default: ``MAAS_API_KEY``; none is
            sent when neither is set.
        timeout: seconds as a float, a ``(connect, read)`` tuple or a :class:`Timeout`.
            Default: 5 s to connect, 600 s to read.
        max_retries: retries after the first attempt for transient failures (default 2).
        session: a ``requests.Session`` to use (and not close); by default the client makes
            its own and closes it in :meth:`close`.

    The client is safe to share between threads. Use it in a ``with`` block, or call
    :meth:`close`, to release its connections. Every method also takes ``timeout=``,
    ``extra_headers=`` and ``extra_body=`` (``extra_query=`` for the ``GET`` ones) for one call,
    and every result carries the call's ``request_id``.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: TimeoutTypes | None = None,
        max_retries: int | None = None,
        session: requests.Session | None = None,
    ) -> None:
        configure_logging()
        self._options = ClientOptions.resolve(base_url, api_key, timeout, max_retries)
        self._transport = SyncTransport(session if session is not None else new_session())
        self._owns_transport = session is None
        self._directory = _ModelDirectory()

    def close(self) -> None:
        """Release the connections (only if the client created its session)."""
        if self._owns_transport:
            self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def with_raw_response(self) -> ClientWithRawResponse:
        """The client's methods, each returning a :class:`RawResponse` (status code, headers,
        ``request_id``, the ``requests.Response``) whose ``.parse()`` gives the usual result::

            raw = client.with_raw_response.chat("Hi")
            print(raw.status_code, raw.headers["X-Request-ID"])
            reply = raw.parse()                                       # a ChatCompletion

        With ``stream=True`` the stream is opened and its headers read; ``.parse()`` returns the
        :class:`Stream` to iterate (and close).
        """
        return ClientWithRawResponse(self)

    # ------------------------------------------------------------------ text generation

    @overload
    def generate(self, prompt: str | Sequence[str], *, stream: Literal[False] = False,
                 **options: Unpack[GenerateOptions]) -> Completion: ...

    @overload
    def generate(self, prompt: str | Sequence[str], *, stream: Literal[True],
                 **options: Unpack[GenerateOptions]) -> Stream[CompletionChunk]: ...

    @overload
    def generate(self, prompt: str | Sequence[str], *, stream: bool,
                 **options: Unpack[GenerateOptions]) -> Completion | Stream[CompletionChunk]: ...

    def generate(self, prompt: str | Sequence[str], *, stream: bool = False,
                 **options: Unpack[GenerateOptions]) -> Completion | Stream[CompletionChunk]:
        """Continue ``prompt`` (``POST /v1/completions``).

        The sampling options are OpenAI's: ``max_tokens``, ``temperature`` (0 is greedy),
        ``top_p``, ``n`` choices per prompt, ``stop`` strings, ``seed`` and ``logprobs`` (how
        many alternatives per token). Unset options take the server's defaults; ``model``
        defaults to the server's first text-generation model.

        Returns a :class:`Completion` (``.text`` is the first choice's text), or with
        ``stream=True`` a :class:`Stream` of :class:`CompletionChunk` (``.text`` is new text;
        ``stream_options={"include_usage": True}`` adds a last chunk with the usage).
        """
        return self._run(_api.generate(prompt, stream, options))

    @overload
    def chat(self, messages: str | Sequence[MessageInput], *, stream: Literal[False] = False,
             **options: Unpack[ChatOptions]) -> ChatCompletion: ...

    @overload
    def chat(self, messages: str | Sequence[MessageInput], *, stream: Literal[True],
             **options: Unpack[ChatOptions]) -> Stream[ChatCompletionChunk]: ...

    @overload
    def chat(self, messages: str | Sequence[MessageInput], *, stream: bool,
             **options: Unpack[ChatOptions]) -> ChatCompletion | Stream[ChatCompletionChunk]: ...

    def chat(self, messages: str | Sequence[MessageInput], *, stream: bool = False,
             **options: Unpack[ChatOptions]) -> ChatCompletion | Stream[ChatCompletionChunk]:
        """Reply to a conversation (``POST /v1/chat/completions``).

        ``messages`` is a list of ``{"role": ..., "content": ...}`` dicts (or
        :class:`ChatMessage`); a plain string is one user message. Sampling options as in
        :meth:`generate`, except that ``logprobs`` is a bool and ``top_logprobs`` says how
        many alternatives per token.

        ``tools`` offers functions (:class:`Tool`, or OpenAI's dicts) and ``tool_choice`` says
        whether the model must call one (``"auto"``, ``"none"``, ``"required"``, or
        ``{"type": "function", "function": {"name": ...}}``); the reply's ``.tool_calls`` are
        typed :class:`ToolCall` objects. ``response_format`` holds the reply to a JSON schema:
        OpenAI's dict, or a pydantic model class (see :meth:`chat_parse` to get the model back).

        Returns a :class:`ChatCompletion` (``.text`` is the first reply), or with
        ``stream=True`` a :class:`Stream` of :class:`ChatCompletionChunk`.
        """
        return self._run(_api.chat(messages, stream, options))

    def chat_parse(self, messages: str | Sequence[MessageInput], response_format: type[P],
                   **options: Unpack[ParseOptions]) -> P:
        """Chat with the reply held to ``response_format``'s JSON schema, and return it as that model.

        ``response_format`` is a pydantic model class; the server constrains generation to its
        schema. Raises :class:`StructuredOutputError` (with the reply's ``.text`` and
        ``.finish_reason``) when the reply does not validate, e.g. when ``max_tokens`` cut it short.
        """
        return self._run(_api.chat_parse(messages, response_format, options))

    @overload
    def create_response(self, input: str | Sequence[Mapping[str, Any]], *, stream: Literal[False] = False,
                        **options: Unpack[ResponseOptions]) -> ResponseObject: ...

    @overload
    def create_response(self, input: str | Sequence[Mapping[str, Any]], *, stream: Literal[True],
                        **options: Unpack[ResponseOptions]) -> Stream[ResponseEvent]: ...

    @overload
    def create_response(self, input: str | Sequence[Mapping[str, Any]], *, stream: bool,
                        **options: Unpack[ResponseOptions]) -> ResponseObject | Stream[ResponseEvent]: ...

    def create_response(self, input: str | Sequence[Mapping[str, Any]], *, stream: bool = False,
                        **options: Unpack[ResponseOptions]) -> ResponseObject | Stream[ResponseEvent]:
        """OpenAI's Responses API (``POST /v1/responses``): ``input`` is a text or a list of items.

        Options: ``instructions`` (a system message), ``max_output_tokens``, ``temperature``,
        ``top_p``, ``tools`` and ``tool_choice`` (as for :meth:`chat`), and ``response_format``
        (a pydantic model class or OpenAI's ``text.format`` dict). Returns a
        :class:`ResponseObject` (``.output_text``, ``.function_calls``), or with ``stream=True``
        a :class:`Stream` of :class:`ResponseEvent` (``.text`` is new text).
        """
        return self._run(_api.create_response(input, stream, options))

    # ------------------------------------------------------------------ embeddings, classification

    def embed(self, input: str | Sequence[str], **options: Unpack[ModelOptions]) -> Embeddings:
        """Embed one text or several (``POST /v1/embeddings``); ``.vectors`` lists the vectors
        in input order (maas vectors are L2-normalized)."""
        return self._run(_api.embed(input, options))

    def classify_text(self, input: str | Sequence[str], labels: Sequence[str] | None = None, top_k: int | None = None,
                      model: str | None = None, *, explain: bool = False,
                      **options: Unpack[CallOptions]) -> Classification:
        """Label one text or several (``POST /v1/classify/text``).

        With ``labels`` the texts are scored against those labels (zero-shot with an
        embeddings model); without, a text-classification model uses its own labels. Without
        ``model`` the server picks the model that fits (``GET /v1/models`` lists them).
        ``top_k`` keeps the best k. ``.labels`` is the first input's labels, best first.
        ``explain=True`` also weighs each token for the top label (``item.explanation.tokens``;
        a notebook shades them); it costs a backward pass, and the server takes fewer inputs per call.
        """
        return self._run(_api.classify_text(input, labels, top_k, model, explain, options))

    def classify_image(self, images: ImageInput | Sequence[ImageInput], top_k: int | None = None,
                       model: str | None = None, *, explain: bool = False, overlay: bool = False,
                       **options: Unpack[CallOptions]) -> Classification:
        """Label one image or several (``POST /v1/classify/image``, multipart upload).

        An image is a path (``str`` or ``Path``), ``bytes``, a binary file object, a
        ``PIL.Image.Image``, or a list of these. ``top_k`` keeps the best k (server default 5).
        ``explain=True`` also returns where the model looked for the top label
        (``item.explanation.grid``); ``overlay=True`` adds that heatmap drawn over the image as a
        PNG (``item.explanation.overlay``), which a notebook shows.
        """
        return self._run(_api.classify_image(images, top_k, model, explain, overlay, options))

    # ------------------------------------------------------------------ named entities

    def extract_entities(self, input: str | Sequence[str], model: str | None = None,
                         aggregation: Literal["simple", "none"] = "simple", **options: Unpack[CallOptions]) -> Entities:
        """Find the named entities of one text or several (``POST /v1/entities``).

        Each :class:`Entity` has its ``text``, ``label`` (``PERSON``, ``GPE``...), ``start`` and
        ``end`` (character offsets: ``text == input[start:end]``) and ``score`` (``None`` when the
        model gives no probability, as spaCy pipelines do). ``aggregation="simple"`` gives one
        span per entity; ``"none"`` one row per token inside an entity, labelled with its IOB tag
        (``B-PERSON``, ``I-PERSON``). ``.entities`` is the first input's entities.
        """
        return self._run(_api.extract_entities(input, model, aggregation, options))

    # ------------------------------------------------------------------ personal data

    def detect_pii(self, input: str | Sequence[str], types: Sequence[str] | None = None,
                   score_threshold: float | None = None, model: str | None = None, *, include_text: bool = False,
                   **options: Unpack[CallOptions]) -> PiiResults:
        """Find personal data in one text or several (``POST /v1/pii``).

        Each :class:`PiiSpan` has its ``type`` (``PERSON``, ``EMAIL_ADDRESS``, ``PHONE_NUMBER``,
        ``CREDIT_CARD``, ``IBAN_CODE``, ``IP_ADDRESS``, ``US_SSN``; ``LOCATION`` when named in
        ``types``), ``start`` and ``end`` (character offsets) and ``score``; its ``text`` only with
        ``include_text=True``. ``.entities`` is the first input's spans.
        """
        return self._run(_api.find_pii(input, types, score_threshold, None, None, include_text, model, options))

    def redact(self, input: str | Sequence[str], style: Literal["type", "mask"] = "type", mask_char: str | None = None,
               types: Sequence[str] | None = None, score_threshold: float | None = None, model: str | None = None,
               **options: Unpack[CallOptions]) -> PiiResults:
        """Remove personal data from one text or several (``POST /v1/pii`` with ``redact``).

        ``style="type"`` replaces each span by ``<TYPE>`` (``<EMAIL_ADDRESS>``); ``"mask"`` by
        ``mask_char`` (server default ``*``) repeated over its length. ``.redacted`` is the first
        input redacted, ``.redacted_texts`` every input's; the spans are in ``.data`` as for
        :meth:`detect_pii`.
        """
        return self._run(_api.find_pii(input, types, score_threshold, style, mask_char, False, model, options))

    # ------------------------------------------------------------------ text in images, roles, scenes

    def read_text(self, images: ImageInput | Sequence[ImageInput], score_threshold: float | None = None,
                  model: str | None = None, **options: Unpack[CallOptions]) -> TextReadings:
        """Read the text in one image or several (``POST /v1/ocr``, multipart upload).

        Images are given as for :meth:`classify_image`. ``.text`` is the first image's text in reading
        order (rows top to bottom, each left to right); ``.lines`` its lines, each with its score and
        polygon in the pixels of the image as sent. ``score_threshold`` (server default 0.5) leaves out
        lines the recogniser is less sure of.
        """
        return self._run(_api.read_text(images, score_threshold, model, options))

    def label_roles(self, input: str | Sequence[str], model: str | None = None,
                    **options: Unpack[CallOptions]) -> RoleLabellings:
        """Who did what to whom, when and where: each verb's semantic roles (``POST /v1/srl``).

        ``.verbs`` lists the first text's verbs, each with AllenNLP's ``tags`` and ``description`` and
        its ``arguments`` as character spans. ``method`` on each item says how they were found: the
        default model's "dependency-rules" are rules over a syntactic parse, not a trained SRL model.
        """
        return self._run(_api.label_roles(input, model, options))

    def classify_scene(self, images: ImageInput | Sequence[ImageInput], model: str | None = None,
                       **options: Unpack[CallOptions]) -> Scenes:
        """The kind of place each image shows (``POST /v1/classify/scene``): ``.top_level`` (indoor, outdoor
        natural, outdoor man-made) and ``.label`` of the first image, None when nothing gives it away; each
        item's ``method`` and ``evidence`` say how it was found."""
        return self._run(_api.classify_scene(images, model, options))

    def embed_images(self, images: ImageInput | Sequence[ImageInput], model: str | None = None,
                     **options: Unpack[CallOptions]) -> Embeddings:
        """A unit vector per image from an image classifier's pooled features (``POST /v1/images/embeddings``),
        for image-to-image similarity: the dot product of two is their cosine."""
        return self._run(_api.embed_images(images, model, options))

    # ------------------------------------------------------------------ objects and faces

    def detect_objects(self, images: ImageInput | Sequence[ImageInput], score_threshold: float | None = None,
                       iou_threshold: float | None = None, max_detections: int | None = None,
                       model: str | None = None, **options: Unpack[CallOptions]) -> ObjectDetections:
        """Find labelled objects in one image or several (``POST /v1/detect/objects``, multipart upload).

        Images are given as for :meth:`classify_image`. ``score_threshold`` (server default 0.25)
        leaves out what the model is less sure of; boxes of one label overlapping more than
        ``iou_threshold`` (default 0.45) count as one object; ``max_detections`` (default 100)
        caps each image's list. Boxes are in the pixels of each image as sent. ``.objects`` is the
        first image's list, best first; the result keeps the uploaded images, so that a notebook
        shows each one with its boxes drawn over it.
        """
        return self._run(_api.detect(_api.DETECT_OBJECTS, ObjectDetections, images, score_threshold, iou_threshold,
                                     max_detections, model, options))

    def detect_faces(self, images: ImageInput | Sequence[ImageInput], score_threshold: float | None = None,
                     iou_threshold: float | None = None, max_detections: int | None = None,
                     model: str | None = None, **options: Unpack[CallOptions]) -> FaceDetections:
        """Find faces in one image or several (``POST /v1/detect/faces``, multipart upload).

        Images are given as for :meth:`classify_image`. ``score_threshold`` leaves out faces the model is
        less sure of (MTCNN keeps only faces above 0.7 in any case); of two faces overlapping more than
        ``iou_threshold`` (default 0.45) the better is kept; ``max_detections`` (default 100) caps each
        image's list. Boxes and landmarks are in the pixels of each image as sent. ``.faces`` is the first
        image's list, best first; a notebook shows each image with its faces marked (the result keeps the
        uploaded images for that, in memory only).
        """
        return self._run(_api.detect(_api.DETECT_FACES, FaceDetections, images, score_threshold, iou_threshold,
                                     max_detections, model, options))

    def embed_faces(self, images: ImageInput | Sequence[ImageInput], score_threshold: float | None = None,
                    iou_threshold: float | None = None, max_detections: int | None = None,
                    model: str | None = None, **options: Unpack[CallOptions]) -> FaceDetections:
        """Find faces and give each a vector (``POST /v1/faces/embeddings``): as :meth:`detect_faces`, with
        ``face.embedding`` set. Two faces whose vectors lie less than 0.6 apart (``face.distance(other)``) show
        the same person, for the default model (dlib's 128-d vectors)."""
        return self._run(_api.detect(_api.EMBED_FACES, FaceDetections, images, score_threshold, iou_threshold,
                                     max_detections, model, options))

    def compare_faces(self, a: ImageInput, b: ImageInput, threshold: float = SAME_PERSON, model: str | None = None,
                      **options: Unpack[CallOptions]) -> FaceComparison:
        """Whether two photos show the same person: the distance between the best face of each (one call to
        ``POST /v1/faces/embeddings`` with both images) and ``same_person = distance < threshold``.

        Raises ``MaasError`` when a photo holds no face the model finds.
        """
        return self._run(_api.compare_faces(a, b, threshold, model, options))

    # ------------------------------------------------------------------ speech

    def transcribe(self, audio: AudioInput, model: str | None = None,
                   **options: Unpack[TranscribeOptions]) -> Transcription:
        """Speech to text (``POST /v1/audio/transcriptions``, multipart upload), with timed segments.

        ``audio`` is a path, the bytes of an audio file (WAV, FLAC, MP3, Ogg, WebM, M4A...), a binary file
        object, or a numpy array of samples (mono, or channels last) with its ``sample_rate``. ``language``
        is an ISO 639-1 code (default: detected); ``words=True`` also times each word; ``prompt`` and
        ``temperature`` are Whisper's. In a notebook the result shows its segments with their times.
        """
        return self._run(_api.transcribe(audio, model, options))

    def translate(self, audio: AudioInput, model: str | None = None,
                  **options: Unpack[TranslateOptions]) -> Transcription:
        """Speech in any language the model knows to English text (``POST /v1/audio/translations``).

        ``audio`` and the options as for :meth:`transcribe` (no ``language``: it is detected; no word
        times). Needs a multilingual speech model: an English-only one answers 400
        ``translation_unsupported``.
        """
        return self._run(_api.translate(audio, model, options))

    # ------------------------------------------------------------------ models, usage

    def models(self, **options: Unpack[GetOptions]) -> list[ModelInfo]:
        """The models the server serves (``GET /v1/models``)."""
        return self._run(_api.models(options))

    def model(self, model: str, **options: Unpack[GetOptions]) -> ModelInfo:
        """One served model (``GET /v1/models/{model}``); NotFoundError when there is none."""
        return self._run(_api.model(model, options))

    def usage(self, since: str | float | datetime | None = None, **options: Unpack[GetOptions]) -> UsageReport:
        """What the caller's API key used, per model (``GET /v1/usage``): requests, errors, tokens and
        mean latency, all time or ``since`` a date (ISO text, Unix seconds or a ``datetime``)."""
        return self._run(_api.usage(since, options))


    # ------------------------------------------------------------------ admin API (admin keys only)

    def admin_keys(self, **options: Unpack[GetOptions]) -> list[AdminKey]:
        """Every API key, revoked and expired ones too, oldest first (``GET /v1/admin/keys``)."""
        return self._run(_api.admin_keys(options))

    def admin_create_key(self, name: str, **options: Unpack[KeyCreateOptions]) -> CreatedKey:
        """A new API key (``POST /v1/admin/keys``): ``CreatedKey.key`` is the only place the secret appears.

        Limits and scopes as keywords (see :class:`KeySettings`; left out: unlimited, every model and
        task), and ``expires_at`` (a date, Unix seconds or a ``datetime``). A name held by an active
        key is a 409 (:class:`APIStatusError`)."""
        return self._run(_api.admin_create_key(name, options))

    def admin_update_key(self, key_id: int, **options: Unpack[KeyUpdateOptions]) -> AdminKey:
        """Change a key's limits or scopes (``PATCH /v1/admin/keys/{id}``): the settings given are set,
        ``None`` lifts one; the others are kept. Servers apply it within their auth cache time (5 s)."""
        return self._run(_api.admin_update_key(key_id, options))

    def admin_revoke_key(self, key_id: int, **options: Unpack[CallOptions]) -> AdminKey:
        """Revoke a key (``DELETE /v1/admin/keys/{id}``); its record stays, with ``status`` revoked."""
        return self._run(_api.admin_revoke_key(key_id, options))

    def admin_usage(self, since: str | float | datetime | None = None, until: str | float | datetime | None = None,
                    bucket: Literal["minute", "hour", "day"] = "hour", key_id: int | None = None,
                    key_name: str | None = None, model: str | None = None,
                    **options: Unpack[GetOptions]) -> AdminUsage:
        """Every key's usage per time bucket and model (``GET /v1/admin/usage``), for charts and bills."""
        return self._run(_api.admin_usage(since, until, bucket, key_id, key_name, model, options))

    def admin_audit(self, since: str | float | datetime | None = None, until: str | float | datetime | None = None,
                    key_id: int | None = None, limit: int | None = None,
                    **options: Unpack[GetOptions]) -> list[AuditEntry]:
        """Changes to keys, newest first (``GET /v1/admin/audit``): who, from where, what, when."""
        return self._run(_api.admin_audit(since, until, key_id, limit, options))

    # ------------------------------------------------------------------ plumbing

    @overload
    def _run(self, call: StreamRequest[T]) -> Stream[T]: ...

    @overload
    def _run(self, call: APIRequest[T]) -> T: ...

    def _run(self, call: APIRequest[T] | StreamRequest[T]) -> T | Stream[T]:
        response: RawResponse[T | Stream[T]] = self._send(call)
        return self._finish(response)

    @overload
    def _send(self, call: StreamRequest[T]) -> RawResponse[Stream[T]]: ...

    @overload
    def _send(self, call: APIRequest[T]) -> RawResponse[T]: ...

    @overload
    def _send(self, call: APIRequest[T] | StreamRequest[T]) -> RawResponse[T | Stream[T]]: ...

    def _send(self, call: APIRequest[T] | StreamRequest[T]) -> RawResponse[T | Stream[T]]:
        if call.model_route is not None and call.needs_model():
            call = call.with_model(default_model(call.model_route, self.base_url, self._directory.models(self)))
        if isinstance(call, StreamRequest):
            return self._transport.stream(self._options, call)
        return self._transport.request(self._options, call)


class _ModelDirectory:
    """The answer of ``GET /v1/models``, fetched once per client to find default models."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: list[ModelInfo] | None = None

    def models(self, client: Client) -> list[ModelInfo]:
        # The lock is held during the fetch so that concurrent first calls send one request.
        with self._lock:
            if self._models is None:  # parsed here: the client may be a with_raw_response copy
                self._models = client._send(_api.models({})).parse()
            return self._models


class ClientWithRawResponse(_RawView):
    """``client.with_raw_response``: every :class:`Client` method, returning a :class:`RawResponse`."""

    generate = RawStreamingMethod(Client.generate, CompletionChunk)
    chat = RawStreamingMethod(Client.chat, ChatCompletionChunk)
    chat_parse = RawMethod(Client.chat_parse)
    create_response = RawStreamingMethod(Client.create_response, ResponseEvent)
    embed = RawMethod(Client.embed)
    classify_text = RawMethod(Client.classify_text)
    classify_image = RawMethod(Client.classify_image)
    extract_entities = RawMethod(Client.extract_entities)
    detect_objects = RawMethod(Client.detect_objects)
    detect_faces = RawMethod(Client.detect_faces)
    embed_faces = RawMethod(Client.embed_faces)
    compare_faces = RawMethod(Client.compare_faces)
    read_text = RawMethod(Client.read_text)
    label_roles = RawMethod(Client.label_roles)
    classify_scene = RawMethod(Client.classify_scene)
    embed_images = RawMethod(Client.embed_images)
    detect_pii = RawMethod(Client.detect_pii)
    redact = RawMethod(Client.redact)
    transcribe = RawMethod(Client.transcribe)
    translate = RawMethod(Client.translate)
    models = RawMethod(Client.models)
    model = RawMethod(Client.model)
    usage = RawMethod(Client.usage)
    admin_keys = RawMethod(Client.admin_keys)
    admin_create_key = RawMethod(Client.admin_create_key)
    admin_update_key = RawMethod(Client.admin_update_key)
    admin_revoke_key = RawMethod(Client.admin_revoke_key)
    admin_usage = RawMethod(Client.admin_usage)
    admin_audit = RawMethod(Client.admin_audit)
