"""The :class:`AsyncClient`: :class:`~maas_client.Client`'s methods, awaited, on ``httpx``.

Each method builds its request with the same builder as the sync client (``_api.py``) and awaits
the async transport (``_async_transport.py``); headers, the default model, errors, retries and
event-stream parsing are the shared ones. httpx (the ``async`` extra: ``pip install
'maas-kit[async]'``) is imported when the first AsyncClient is made, never by ``import maas_client``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, Unpack, overload

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
from ._response import AsyncRawMethod, AsyncRawStreamingMethod, RawResponse, _RawView
from ._streaming import AsyncStream
from .errors import MaasError
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

if TYPE_CHECKING:
    import httpx

    from ._async_transport import AsyncTransport

__all__ = ["AsyncClient", "AsyncClientWithRawResponse"]

T = TypeVar("T")
P = TypeVar("P", bound=BaseModel)


class AsyncClient(BaseClient[Any]):
    """An asyncio client for one maas (or OpenAI-compatible) server: :class:`Client`'s methods, awaited.

    Args:
        base_url, api_key, timeout, max_retries: as for :class:`Client` (same ``MAAS_*`` variables,
            same defaults, same retry policy).
        http_client: an ``httpx.AsyncClient`` to use (and not close): proxies, certificates, or
            ``httpx.MockTransport`` in tests. By default the client makes its own and closes it in
            :meth:`close`.

    Use it in an ``async with`` block, or ``await client.close()``. Streams are
    :class:`AsyncStream`: ``async with await client.chat(..., stream=True) as stream:`` closes the
    response (stopping generation) when the block is left early, and so does cancelling the task
    that iterates it. One client serves any number of concurrent tasks on one event loop.
    """

    _transport: AsyncTransport  # imported with httpx, when the first AsyncClient is made

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: TimeoutTypes | None = None,
        max_retries: int | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        configure_logging()
        self._options = ClientOptions.resolve(base_url, api_key, timeout, max_retries)
        try:
            from ._async_transport import IN_FLIGHT, AsyncTransport, new_http_client
        except ImportError as exc:  # httpx is the async extra's, not the base install's
            raise MaasError("AsyncClient needs httpx: pip install 'maas-kit[async]'") from exc
        if http_client is None:  # its own pool: calls wait their turn before it, not inside it
            import asyncio  # here, not at import: `import maas_client` loads no asyncio

            self._transport = AsyncTransport(new_http_client(), asyncio.Semaphore(IN_FLIGHT))
        else:
            self._transport = AsyncTransport(http_client)
        self._owns_transport = http_client is None
        self._directory = _ModelDirectory()

    async def close(self) -> None:
        """Release the connections (only if the client created its httpx client)."""
        if self._owns_transport:
            await self._transport.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def with_raw_response(self) -> AsyncClientWithRawResponse:
        """As :attr:`Client.with_raw_response`: ``raw = await client.with_raw_response.chat("Hi")``
        gives a :class:`RawResponse` (``.http_response`` is the ``httpx.Response``); ``raw.parse()``
        (not awaited: the body is already read) gives the result, or the :class:`AsyncStream`."""
        return AsyncClientWithRawResponse(self)

    # ------------------------------------------------------------------ text generation

    @overload
    async def generate(self, prompt: str | Sequence[str], *, stream: Literal[False] = False,
                       **options: Unpack[GenerateOptions]) -> Completion: ...

    @overload
    async def generate(self, prompt: str | Sequence[str], *, stream: Literal[True],
                       **options: Unpack[GenerateOptions]) -> AsyncStream[CompletionChunk]: ...

    @overload
    async def generate(self, prompt: str | Sequence[str], *, stream: bool,
                       **options: Unpack[GenerateOptions]) -> Completion | AsyncStream[CompletionChunk]: ...

    async def generate(self, prompt: str | Sequence[str], *, stream: bool = False,
                       **options: Unpack[GenerateOptions]) -> Completion | AsyncStream[CompletionChunk]:
        """As :meth:`Client.generate`."""
        return await self._run(_api.generate(prompt, stream, options))

    @overload
    async def chat(self, messages: str | Sequence[MessageInput], *, stream: Literal[False] = False,
                   **options: Unpack[ChatOptions]) -> ChatCompletion: ...

    @overload
    async def chat(self, messages: str | Sequence[MessageInput], *, stream: Literal[True],
                   **options: Unpack[ChatOptions]) -> AsyncStream[ChatCompletionChunk]: ...

    @overload
    async def chat(self, messages: str | Sequence[MessageInput], *, stream: bool,
                   **options: Unpack[ChatOptions]) -> ChatCompletion | AsyncStream[ChatCompletionChunk]: ...

    async def chat(self, messages: str | Sequence[MessageInput], *, stream: bool = False,
                   **options: Unpack[ChatOptions]) -> ChatCompletion | AsyncStream[ChatCompletionChunk]:
        """As :meth:`Client.chat`."""
        return await self._run(_api.chat(messages, stream, options))

    async def chat_parse(self, messages: str | Sequence[MessageInput], response_format: type[P],
                         **options: Unpack[ParseOptions]) -> P:
        """As :meth:`Client.chat_parse`."""
        return await self._run(_api.chat_parse(messages, response_format, options))

    @overload
    async def create_response(self, input: str | Sequence[Mapping[str, Any]], *, stream: Literal[False] = False,
                              **options: Unpack[ResponseOptions]) -> ResponseObject: ...

    @overload
    async def create_response(self, input: str | Sequence[Mapping[str, Any]], *, stream: Literal[True],
                              **options: Unpack[ResponseOptions]) -> AsyncStream[ResponseEvent]: ...

    @overload
    async def create_response(self, input: str | Sequence[Mapping[str, Any]], *, stream: bool,
                              **options: Unpack[ResponseOptions]) -> ResponseObject | AsyncStream[ResponseEvent]: ...

    async def create_response(self, input: str | Sequence[Mapping[str, Any]], *, stream: bool = False,
                              **options: Unpack[ResponseOptions]) -> ResponseObject | AsyncStream[ResponseEvent]:
        """As :meth:`Client.create_response`."""
        return await self._run(_api.create_response(input, stream, options))

    # ------------------------------------------------------------------ embeddings, classification

    async def embed(self, input: str | Sequence[str], **options: Unpack[ModelOptions]) -> Embeddings:
        """As :meth:`Client.embed`."""
        return await self._run(_api.embed(input, options))

    async def classify_text(self, input: str | Sequence[str], labels: Sequence[str] | None = None,
                            top_k: int | None = None, model: str | None = None, *, explain: bool = False,
                            **options: Unpack[CallOptions]) -> Classification:
        """As :meth:`Client.classify_text`."""
        return await self._run(_api.classify_text(input, labels, top_k, model, explain, options))

    async def classify_image(self, images: ImageInput | Sequence[ImageInput], top_k: int | None = None,
                             model: str | None = None, *, explain: bool = False, overlay: bool = False,
                             **options: Unpack[CallOptions]) -> Classification:
        """As :meth:`Client.classify_image`."""
        return await self._run(_api.classify_image(images, top_k, model, explain, overlay, options))

    # ------------------------------------------------------------------ named entities

    async def extract_entities(self, input: str | Sequence[str], model: str | None = None,
                               aggregation: Literal["simple", "none"] = "simple",
                               **options: Unpack[CallOptions]) -> Entities:
        """As :meth:`Client.extract_entities`."""
        return await self._run(_api.extract_entities(input, model, aggregation, options))

    # ------------------------------------------------------------------ personal data

    async def detect_pii(self, input: str | Sequence[str], types: Sequence[str] | None = None,
                         score_threshold: float | None = None, model: str | None = None, *,
                         include_text: bool = False, **options: Unpack[CallOptions]) -> PiiResults:
        """As :meth:`Client.detect_pii`."""
        return await self._run(_api.find_pii(input, types, score_threshold, None, None, include_text, model,
                                             options))

    async def redact(self, input: str | Sequence[str], style: Literal["type", "mask"] = "type",
                     mask_char: str | None = None, types: Sequence[str] | None = None,
                     score_threshold: float | None = None, model: str | None = None,
                     **options: Unpack[CallOptions]) -> PiiResults:
        """As :meth:`Client.redact`."""
        return await self._run(_api.find_pii(input, types, score_threshold, style, mask_char, False, model, options))

    # ------------------------------------------------------------------ text in images, roles, scenes

    async def read_text(self, images: ImageInput | Sequence[ImageInput], score_threshold: float | None = None,
                        model: str | None = None, **options: Unpack[CallOptions]) -> TextReadings:
        """As :meth:`Client.read_text`."""
        return await self._run(_api.read_text(images, score_threshold, model, options))

    async def label_roles(self, input: str | Sequence[str], model: str | None = None,
                          **options: Unpack[CallOptions]) -> RoleLabellings:
        """As :meth:`Client.label_roles`."""
        return await self._run(_api.label_roles(input, model, options))

    async def classify_scene(self, images: ImageInput | Sequence[ImageInput], model: str | None = None,
                             **options: Unpack[CallOptions]) -> Scenes:
        """As :meth:`Client.classify_scene`."""
        return await self._run(_api.classify_scene(images, model, options))

    async def embed_images(self, images: ImageInput | Sequence[ImageInput], model: str | None = None,
                           **options: Unpack[CallOptions]) -> Embeddings:
        """As :meth:`Client.embed_images`."""
        return await self._run(_api.embed_images(images, model, options))

    # ------------------------------------------------------------------ objects and faces

    async def detect_objects(self, images: ImageInput | Sequence[ImageInput], score_threshold: float | None = None,
                             iou_threshold: float | None = None, max_detections: int | None = None,
                             model: str | None = None, **options: Unpack[CallOptions]) -> ObjectDetections:
        """As :meth:`Client.detect_objects`."""
        return await self._run(_api.detect(_api.DETECT_OBJECTS, ObjectDetections, images, score_threshold,
                                           iou_threshold, max_detections, model, options))

    async def detect_faces(self, images: ImageInput | Sequence[ImageInput], score_threshold: float | None = None,
                           iou_threshold: float | None = None, max_detections: int | None = None,
                           model: str | None = None, **options: Unpack[CallOptions]) -> FaceDetections:
        """As :meth:`Client.detect_faces`."""
        return await self._run(_api.detect(_api.DETECT_FACES, FaceDetections, images, score_threshold,
                                           iou_threshold, max_detections, model, options))

    async def embed_faces(self, images: ImageInput | Sequence[ImageInput], score_threshold: float | None = None,
                          iou_threshold: float | None = None, max_detections: int | None = None,
                          model: str | None = None, **options: Unpack[CallOptions]) -> FaceDetections:
        """As :meth:`Client.embed_faces`."""
        return await self._run(_api.detect(_api.EMBED_FACES, FaceDetections, images, score_threshold,
                                           iou_threshold, max_detections, model, options))

    async def compare_faces(self, a: ImageInput, b: ImageInput, threshold: float = SAME_PERSON,
                            model: str | None = None, **options: Unpack[CallOptions]) -> FaceComparison:
        """As :meth:`Client.compare_faces`."""
        return await self._run(_api.compare_faces(a, b, threshold, model, options))

    # ------------------------------------------------------------------ speech

    async def transcribe(self, audio: AudioInput, model: str | None = None,
                         **options: Unpack[TranscribeOptions]) -> Transcription:
        """As :meth:`Client.transcribe`."""
        return await self._run(_api.transcribe(audio, model, options))

    async def translate(self, audio: AudioInput, model: str | None = None,
                        **options: Unpack[TranslateOptions]) -> Transcription:
        """As :meth:`Client.translate`."""
        return await self._run(_api.translate(audio, model, options))

    # ------------------------------------------------------------------ models, usage

    async def models(self, **options: Unpack[GetOptions]) -> list[ModelInfo]:
        """As :meth:`Client.models`."""
        return await self._run(_api.models(options))

    async def model(self, model: str, **options: Unpack[GetOptions]) -> ModelInfo:
        """As :meth:`Client.model`."""
        return await self._run(_api.model(model, options))

    async def usage(self, since: str | float | datetime | None = None, **options: Unpack[GetOptions]) -> UsageReport:
        """As :meth:`Client.usage`."""
        return await self._run(_api.usage(since, options))


    # ------------------------------------------------------------------ admin API (admin keys only)

    async def admin_keys(self, **options: Unpack[GetOptions]) -> list[AdminKey]:
        """As :meth:`Client.admin_keys`."""
        return await self._run(_api.admin_keys(options))

    async def admin_create_key(self, name: str, **options: Unpack[KeyCreateOptions]) -> CreatedKey:
        """As :meth:`Client.admin_create_key`."""
        return await self._run(_api.admin_create_key(name, options))

    async def admin_update_key(self, key_id: int, **options: Unpack[KeyUpdateOptions]) -> AdminKey:
        """As :meth:`Client.admin_update_key`."""
        return await self._run(_api.admin_update_key(key_id, options))

    async def admin_revoke_key(self, key_id: int, **options: Unpack[CallOptions]) -> AdminKey:
        """As :meth:`Client.admin_revoke_key`."""
        return await self._run(_api.admin_revoke_key(key_id, options))

    async def admin_usage(self, since: str | float | datetime | None = None,
                          until: str | float | datetime | None = None,
                          bucket: Literal["minute", "hour", "day"] = "hour", key_id: int | None = None,
                          key_name: str | None = None, model: str | None = None,
                          **options: Unpack[GetOptions]) -> AdminUsage:
        """As :meth:`Client.admin_usage`."""
        return await self._run(_api.admin_usage(since, until, bucket, key_id, key_name, model, options))

    async def admin_audit(self, since: str | float | datetime | None = None,
                          until: str | float | datetime | None = None, key_id: int | None = None,
                          limit: int | None = None, **options: Unpack[GetOptions]) -> list[AuditEntry]:
        """As :meth:`Client.admin_audit`."""
        return await self._run(_api.admin_audit(since, until, key_id, limit, options))

    # ------------------------------------------------------------------ plumbing

    @overload
    async def _run(self, call: StreamRequest[T]) -> AsyncStream[T]: ...

    @overload
    async def _run(self, call: APIRequest[T]) -> T: ...

    async def _run(self, call: APIRequest[T] | StreamRequest[T]) -> T | AsyncStream[T]:
        response: RawResponse[T | AsyncStream[T]] = await self._send(call)
        return self._finish(response)

    @overload
    async def _send(self, call: StreamRequest[T]) -> RawResponse[AsyncStream[T]]: ...

    @overload
    async def _send(self, call: APIRequest[T]) -> RawResponse[T]: ...

    @overload
    async def _send(self, call: APIRequest[T] | StreamRequest[T]) -> RawResponse[T | AsyncStream[T]]: ...

    async def _send(self, call: APIRequest[T] | StreamRequest[T]) -> RawResponse[T | AsyncStream[T]]:
        if call.model_route is not None and call.needs_model():
            models = await self._directory.models(self)
            call = call.with_model(default_model(call.model_route, self.base_url, models))
        if isinstance(call, StreamRequest):
            return await self._transport.stream(self._options, call)
        return await self._transport.request(self._options, call)


class _ModelDirectory:
    """The answer of ``GET /v1/models``, fetched once per client to find default models."""

    def __init__(self) -> None:
        import asyncio  # here: importing asyncio would add 20 ms to `import maas_client`

        self._lock = asyncio.Lock()
        self._models: list[ModelInfo] | None = None

    async def models(self, client: AsyncClient) -> list[ModelInfo]:
        # The lock is held during the fetch so that concurrent first calls send one request.
        async with self._lock:
            if self._models is None:  # parsed here: the client may be a with_raw_response copy
                self._models = (await client._send(_api.models({}))).parse()
            return self._models


class AsyncClientWithRawResponse(_RawView):
    """``client.with_raw_response``: every :class:`AsyncClient` method, awaited to a :class:`RawResponse`."""

    generate = AsyncRawStreamingMethod(AsyncClient.generate, CompletionChunk)
    chat = AsyncRawStreamingMethod(AsyncClient.chat, ChatCompletionChunk)
    chat_parse = AsyncRawMethod(AsyncClient.chat_parse)
    create_response = AsyncRawStreamingMethod(AsyncClient.create_response, ResponseEvent)
    embed = AsyncRawMethod(AsyncClient.embed)
    classify_text = AsyncRawMethod(AsyncClient.classify_text)
    classify_image = AsyncRawMethod(AsyncClient.classify_image)
    extract_entities = AsyncRawMethod(AsyncClient.extract_entities)
    detect_objects = AsyncRawMethod(AsyncClient.detect_objects)
    detect_faces = AsyncRawMethod(AsyncClient.detect_faces)
    embed_faces = AsyncRawMethod(AsyncClient.embed_faces)
    compare_faces = AsyncRawMethod(AsyncClient.compare_faces)
    read_text = AsyncRawMethod(AsyncClient.read_text)
    label_roles = AsyncRawMethod(AsyncClient.label_roles)
    classify_scene = AsyncRawMethod(AsyncClient.classify_scene)
    embed_images = AsyncRawMethod(AsyncClient.embed_images)
    detect_pii = AsyncRawMethod(AsyncClient.detect_pii)
    redact = AsyncRawMethod(AsyncClient.redact)
    transcribe = AsyncRawMethod(AsyncClient.transcribe)
    translate = AsyncRawMethod(AsyncClient.translate)
    models = AsyncRawMethod(AsyncClient.models)
    model = AsyncRawMethod(AsyncClient.model)
    usage = AsyncRawMethod(AsyncClient.usage)
    admin_keys = AsyncRawMethod(AsyncClient.admin_keys)
    admin_create_key = AsyncRawMethod(AsyncClient.admin_create_key)
    admin_update_key = AsyncRawMethod(AsyncClient.admin_update_key)
    admin_revoke_key = AsyncRawMethod(AsyncClient.admin_revoke_key)
    admin_usage = AsyncRawMethod(AsyncClient.admin_usage)
    admin_audit = AsyncRawMethod(AsyncClient.admin_audit)
