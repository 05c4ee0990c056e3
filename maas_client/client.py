"""The :class:`Client`: one object per server, one method per endpoint.

Options come from the constructor's arguments, else the ``MAAS_*`` environment variables,
else the defaults. The methods only say which path, which body and which result type; the
transport does the rest (headers, retries, errors, streaming).
"""

from __future__ import annotations

import io
import mimetypes
import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from types import TracebackType
from typing import IO, Any, Literal, Protocol, TypeVar, cast, overload
from urllib.parse import quote

import requests
from pydantic import BaseModel

from ._streaming import Stream
from ._transport import (
    Timeout,
    TimeoutTypes,
    Transport,
    configure_logging,
    new_session,
    normalize_base_url,
)
from .errors import MaasError
from .types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessage,
    Classification,
    Completion,
    CompletionChunk,
    CompletionRequest,
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
    TextClassificationRequest,
    Transcription,
    _Request,
)

__all__ = ["Client", "ImageInput", "MessageInput"]

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_MAX_RETRIES = 2

COMPLETIONS = "/v1/completions"
CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
CLASSIFY_TEXT = "/v1/classify/text"
CLASSIFY_IMAGE = "/v1/classify/image"
ENTITIES = "/v1/entities"
DETECT_OBJECTS = "/v1/detect/objects"
DETECT_FACES = "/v1/detect/faces"
EMBED_FACES = "/v1/faces/embeddings"
TRANSCRIPTIONS = "/v1/audio/transcriptions"
SAME_PERSON = 0.6  # dlib's threshold for its 128-d face vectors (the default face-embedding model)
MODELS = "/v1/models"


class _SavableImage(Protocol):
    """What the client needs of a ``PIL.Image.Image`` (typed without importing PIL)."""

    def save(self, fp: IO[bytes], format: str | None = None) -> None: ...


ImageInput = str | os.PathLike[str] | bytes | bytearray | IO[bytes] | _SavableImage
MessageInput = ChatMessage | Mapping[str, Any]
M = TypeVar("M", bound=BaseModel)
D = TypeVar("D", ObjectDetections, FaceDetections)  # what the detection routes answer


class Client:
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
    :meth:`close`, to release its connections.
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
        self._transport = Transport(
            base_url=_check_base_url(base_url or os.environ.get("MAAS_BASE_URL") or DEFAULT_BASE_URL),
            api_key=api_key if api_key is not None else os.environ.get("MAAS_API_KEY") or None,
            timeout=Timeout.of(timeout) if timeout is not None else Timeout(),
            max_retries=_check_retries(DEFAULT_MAX_RETRIES if max_retries is None else max_retries),
            session=session if session is not None else new_session(),
        )
        self._owns_session = session is None
        self._directory = _ModelDirectory()

    # ------------------------------------------------------------------ configuration

    @property
    def base_url(self) -> str:
        """The server's URL, without a trailing ``/`` or ``/v1``."""
        return self._transport.base_url

    @property
    def timeout(self) -> Timeout:
        """The default timeouts of this client's calls."""
        return self._transport.timeout

    @property
    def max_retries(self) -> int:
        """How many times a transient failure is retried."""
        return self._transport.max_retries

    def with_options(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: TimeoutTypes | None = None,
        max_retries: int | None = None,
    ) -> Client:
        """A copy with some options changed that shares this client's connections.

        ``client.with_options(max_retries=5, timeout=10).generate(...)`` changes them for one
        call. Closing the copy does not close the shared session; close the original.
        """
        changes: dict[str, Any] = {}
        if base_url is not None:
            changes["base_url"] = _check_base_url(base_url)
        if api_key is not None:
            changes["api_key"] = api_key
        if timeout is not None:
            changes["timeout"] = Timeout.of(timeout)
        if max_retries is not None:
            changes["max_retries"] = _check_retries(max_retries)
        clone = object.__new__(Client)
        clone._transport = replace(self._transport, **changes)
        clone._owns_session = False
        same_server = clone.base_url == self.base_url
        clone._directory = self._directory if same_server else _ModelDirectory()
        return clone

    def close(self) -> None:
        """Release the connections (only if the client created its session)."""
        if self._owns_session:
            self._transport.session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(base_url={self.base_url!r})"

    # ------------------------------------------------------------------ text generation

    @overload
    def generate(
        self,
        prompt: str | Sequence[str],
        *,
        model: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        n: int | None = None,
        stop: str | Sequence[str] | None = None,
        seed: int | None = None,
        logprobs: int | None = None,
        stream: Literal[False] = False,
        timeout: TimeoutTypes | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Completion: ...

    @overload
    def generate(
        self,
        prompt: str | Sequence[str],
        *,
        model: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        n: int | None = None,
        stop: str | Sequence[str] | None = None,
        seed: int | None = None,
        logprobs: int | None = None,
        stream: Literal[True],
        timeout: TimeoutTypes | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Stream[CompletionChunk]: ...

    @overload
    def generate(
        self,
        prompt: str | Sequence[str],
        *,
        model: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        n: int | None = None,
        stop: str | Sequence[str] | None = None,
        seed: int | None = None,
        logprobs: int | None = None,
        stream: bool,
        timeout: TimeoutTypes | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Completion | Stream[CompletionChunk]: ...

    def generate(
        self,
        prompt: str | Sequence[str],
        *,
        model: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        n: int | None = None,
        stop: str | Sequence[str] | None = None,
        seed: int | None = None,
        logprobs: int | None = None,
        stream: bool = False,
        timeout: TimeoutTypes | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Completion | Stream[CompletionChunk]:
        """Continue ``prompt`` (``POST /v1/completions``).

        The sampling options are OpenAI's: ``max_tokens``, ``temperature`` (0 is greedy),
        ``top_p``, ``n`` choices per prompt, ``stop`` strings, ``seed`` and ``logprobs`` (how
        many alternatives per token). Unset options take the server's defaults; ``model``
        defaults to the server's first text-generation model.

        Returns a :class:`Completion` (``.text`` is the first choice's text), or with
        ``stream=True`` a :class:`Stream` of :class:`CompletionChunk` (``.text`` is new text).
        """
        request = CompletionRequest(
            model=model or self._default_model(COMPLETIONS),
            prompt=_str_or_list(prompt),
            max_tokens=max_tokens, temperature=temperature, top_p=top_p, n=n,
            stop=_str_or_list(stop), seed=seed, logprobs=logprobs, stream=stream or None,
        )
        if stream:
            return self._stream(COMPLETIONS, request, CompletionChunk, timeout, extra_headers)
        return self._post(COMPLETIONS, request, Completion, timeout, extra_headers)

    @overload
    def chat(
        self,
        messages: str | Sequence[MessageInput],
        *,
        model: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        n: int | None = None,
        stop: str | Sequence[str] | None = None,
        seed: int | None = None,
        logprobs: bool | None = None,
        top_logprobs: int | None = None,
        stream: Literal[False] = False,
        timeout: TimeoutTypes | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> ChatCompletion: ...

    @overload
    def chat(
        self,
        messages: str | Sequence[MessageInput],
        *,
        model: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        n: int | None = None,
        stop: str | Sequence[str] | None = None,
        seed: int | None = None,
        logprobs: bool | None = None,
        top_logprobs: int | None = None,
        stream: Literal[True],
        timeout: TimeoutTypes | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Stream[ChatCompletionChunk]: ...

    @overload
    def chat(
        self,
        messages: str | Sequence[MessageInput],
        *,
        model: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        n: int | None = None,
        stop: str | Sequence[str] | None = None,
        seed: int | None = None,
        logprobs: bool | None = None,
        top_logprobs: int | None = None,
        stream: bool,
        timeout: TimeoutTypes | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> ChatCompletion | Stream[ChatCompletionChunk]: ...

    def chat(
        self,
        messages: str | Sequence[MessageInput],
        *,
        model: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        n: int | None = None,
        stop: str | Sequence[str] | None = None,
        seed: int | None = None,
        logprobs: bool | None = None,
        top_logprobs: int | None = None,
        stream: bool = False,
        timeout: TimeoutTypes | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> ChatCompletion | Stream[ChatCompletionChunk]:
        """Reply to a conversation (``POST /v1/chat/completions``).

        ``messages`` is a list of ``{"role": ..., "content": ...}`` dicts (or
        :class:`ChatMessage`); a plain string is one user message. Sampling options as in
        :meth:`generate`, except that ``logprobs`` is a bool and ``top_logprobs`` says how
        many alternatives per token.

        Returns a :class:`ChatCompletion` (``.text`` is the first reply), or with
        ``stream=True`` a :class:`Stream` of :class:`ChatCompletionChunk`.
        """
        request = ChatCompletionRequest(
            model=model or self._default_model(CHAT),
            messages=_messages(messages),
            max_tokens=max_tokens, temperature=temperature, top_p=top_p, n=n,
            stop=_str_or_list(stop), seed=seed, logprobs=logprobs, top_logprobs=top_logprobs,
            stream=stream or None,
        )
        if stream:
            return self._stream(CHAT, request, ChatCompletionChunk, timeout, extra_headers)
        return self._post(CHAT, request, ChatCompletion, timeout, extra_headers)

    # ------------------------------------------------------------------ embeddings, classification

    def embed(
        self,
        input: str | Sequence[str],
        *,
        model: str | None = None,
        timeout: TimeoutTypes | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Embeddings:
        """Embed one text or several (``POST /v1/embeddings``); ``.vectors`` lists the vectors
        in input order (maas vectors are L2-normalized)."""
        request = EmbeddingRequest(
            model=model or self._default_model(EMBEDDINGS), input=_str_or_list(input)
        )
        return self._post(EMBEDDINGS, request, Embeddings, timeout, extra_headers)

    def classify_text(
        self,
        input: str | Sequence[str],
        labels: Sequence[str] | None = None,
        top_k: int | None = None,
        model: str | None = None,
        *,
        explain: bool = False,
        timeout: TimeoutTypes | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Classification:
        """Label one text or several (``POST /v1/classify/text``).

        With ``labels`` the texts are scored against those labels (zero-shot with an
        embeddings model); without, a text-classification model uses its own labels. Without
        ``model`` the server picks the model that fits (``GET /v1/models`` lists them).
        ``top_k`` keeps the best k. ``.labels`` is the first input's labels, best first.
        ``explain=True`` also weighs each token for the top label (``item.explanation.tokens``;
        a notebook shades them); it costs a backward pass, and the server takes fewer inputs per call.
        """
        request = TextClassificationRequest(
            model=model,
            input=_str_or_list(input),
            labels=list(labels) if labels is not None else None,
            top_k=top_k,
            explain=explain or None,
        )
        return self._post(CLASSIFY_TEXT, request, Classification, timeout, extra_headers)

    def classify_image(
        self,
        images: ImageInput | Sequence[ImageInput],
        top_k: int | None = None,
        model: str | None = None,
        *,
        explain: bool = False,
        overlay: bool = False,
        timeout: TimeoutTypes | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Classification:
        """Label one image or several (``POST /v1/classify/image``, multipart upload).

        An image is a path (``str`` or ``Path``), ``bytes``, a binary file object, a
        ``PIL.Image.Image``, or a list of these. ``top_k`` keeps the best k (server default 5).
        ``explain=True`` also returns where the model looked for the top label
        (``item.explanation.grid``); ``overlay=True`` adds that heatmap drawn over the image as a
        PNG (``item.explanation.overlay``), which a notebook shows.
        """
        form = ImageClassificationRequest(model=model or self._default_model(CLASSIFY_IMAGE), top_k=top_k,
                                          explain=explain or None, explain_overlay=overlay or None)
        files = [("image", part) for part in _image_parts(images)]
        return self._transport.request(
            "POST", CLASSIFY_IMAGE, Classification, files=files, data=form.to_form(),
            timeout=timeout, headers=extra_headers,
        )

    # ------------------------------------------------------------------ named entities

    def extract_entities(
        self,
        input: str | Sequence[str],
        model: str | None = None,
        aggregation: Literal["simple", "none"] = "simple",
        *,
        timeout: TimeoutTypes | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Entities:
        """Find the named entities of one text or several (``POST /v1/entities``).

        Each :class:`Entity` has its ``text``, ``label`` (``PERSON``, ``GPE``...), ``start`` and
        ``end`` (character offsets: ``text == input[start:end]``) and ``score`` (``None`` when the
        model gives no probability, as spaCy pipelines do). ``aggregation="simple"`` gives one
        span per entity; ``"none"`` one row per token inside an entity, labelled with its IOB tag
        (``B-PERSON``, ``I-PERSON``). ``.entities`` is the first input's entities.
        """
        request = EntityRequest(
            model=model or self._default_model(ENTITIES), input=_str_or_list(input), aggregation=aggregation
        )
        result = self._post(ENTITIES, request, Entities, timeout, extra_headers)
        return result._with_texts([input] if isinstance(input, str) else list(input))

    # ------------------------------------------------------------------ objects and faces

    def detect_objects(
        self,
        images: ImageInput | Sequence[ImageInput],
        score_threshold: float | None = None,
        iou_threshold: float | None = None,
        max_detections: int | None = None,
        model: str | None = None,
        *,
        timeout: TimeoutTypes | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> ObjectDetections:
        """Find labelled objects in one image or several (``POST /v1/detect/objects``, multipart upload).

        Images are given as for :meth:`classify_image`. ``score_threshold`` (server default 0.25)
        leaves out what the model is less sure of; boxes of one label overlapping more than
        ``iou_threshold`` (default 0.45) count as one object; ``max_detections`` (default 100)
        caps each image's list. Boxes are in the pixels of each image as sent. ``.objects`` is the
        first image's list, best first; the result keeps the uploaded images, so that a notebook
        shows each one with its boxes drawn over it.
        """
        form = DetectionRequest(model=model or self._default_model(DETECT_OBJECTS), score_threshold=score_threshold,
                                iou_threshold=iou_threshold, max_detections=max_detections)
        return self._detect(DETECT_OBJECTS, ObjectDetections, images, form, timeout, extra_headers)

    def detect_faces(
        self,
        images: ImageInput | Sequence[ImageInput],
        score_threshold: float | None = None,
        iou_threshold: float | None = None,
        max_detections: int | None = None,
        model: str | None = None,
        *,
        timeout: TimeoutTypes | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> FaceDetections:
        """Find faces in one image or several (``POST /v1/detect/faces``, multipart upload).

        Images are given as for :meth:`classify_image`. ``score_threshold`` leaves out faces the model is
        less sure of (MTCNN keeps only faces above 0.7 in any case); of two faces overlapping more than
        ``iou_threshold`` (default 0.45) the better is kept; ``max_detections`` (default 100) caps each
        image's list. Boxes and landmarks are in the pixels of each image as sent. ``.faces`` is the first
        image's list, best first; a notebook shows each image with its faces marked (the result keeps the
        uploaded images for that, in memory only).
        """
        form = DetectionRequest(model=model or self._default_model(DETECT_FACES), score_threshold=score_threshold,
                                iou_threshold=iou_threshold, max_detections=max_detections)
        return self._detect(DETECT_FACES, FaceDetections, images, form, timeout, extra_headers)

    def embed_faces(
        self,
        images: ImageInput | Sequence[ImageInput],
        score_threshold: float | None = None,
        iou_threshold: float | None = None,
        max_detections: int | None = None,
        model: str | None = None,
        *,
        timeout: TimeoutTypes | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> FaceDetections:
        """Find faces and give each a vector (``POST /v1/faces/embeddings``): as :meth:`detect_faces`, with
        ``face.embedding`` set. Two faces whose vectors lie less than 0.6 apart (``face.distance(other)``) show
        the same person, for the default model (dlib's 128-d vectors)."""
        form = DetectionRequest(model=model or self._default_model(EMBED_FACES), score_threshold=score_threshold,
                                iou_threshold=iou_threshold, max_detections=max_detections)
        return self._detect(EMBED_FACES, FaceDetections, images, form, timeout, extra_headers)

    def compare_faces(
        self,
        a: ImageInput,
        b: ImageInput,
        threshold: float = SAME_PERSON,
        model: str | None = None,
        *,
        timeout: TimeoutTypes | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> FaceComparison:
        """Whether two photos show the same person: the distance between the best face of each (one call to
        :meth:`embed_faces` with both images) and ``same_person = distance < threshold``.

        Raises ``MaasError`` when a photo holds no face the model finds.
        """
        found = self.embed_faces([a, b], model=model, timeout=timeout, extra_headers=extra_headers)
        faces = {item.index: item.faces for item in found.data}
        missing = [name for index, name in enumerate("ab") if not faces.get(index)]
        if missing:
            raise MaasError(f"no face found in image {' or '.join(missing)}; nothing to compare")
        face_a, face_b = faces[0][0], faces[1][0]
        distance = face_a.distance(face_b)
        return FaceComparison(distance=distance, threshold=threshold, same_person=distance < threshold,
                              a=face_a, b=face_b)

    # ------------------------------------------------------------------ models

    def models(
        self,
        *,
        timeout: TimeoutTypes | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> list[ModelInfo]:
        """The models the server serves (``GET /v1/models``)."""
        listing = self._transport.request(
            "GET", MODELS, ModelList, timeout=timeout, headers=extra_headers
        )
        return listing.data

    def model(
        self,
        model: str,
        *,
        timeout: TimeoutTypes | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> ModelInfo:
        """One served model (``GET /v1/models/{model}``); NotFoundError when there is none."""
        path = f"{MODELS}/{quote(model, safe='/')}"
        return self._transport.request("GET", path, ModelInfo, timeout=timeout, headers=extra_headers)

    # ------------------------------------------------------------------ plumbing

    # ------------------------------------------------------------------ speech

    def transcribe(
        self,
        audio: str | os.PathLike[str] | bytes | bytearray | IO[bytes] | Any,
        model: str | None = None,
        *,
        sample_rate: int | None = None,
        language: str | None = None,
        prompt: str | None = None,
        temperature: float | None = None,
        words: bool = False,
        timeout: TimeoutTypes | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Transcription:
        """Speech to text (``POST /v1/audio/transcriptions``, multipart upload), with timed segments.

        ``audio`` is a path, the bytes of an audio file (WAV, FLAC, MP3, Ogg, WebM, M4A...), a binary file
        object, or a numpy array of samples (mono, or channels last) with its ``sample_rate``. ``language``
        is an ISO 639-1 code (default: detected); ``words=True`` also times each word. In a notebook the
        result shows its segments with their times.
        """
        filename, content = _audio_part(audio, sample_rate)
        form = {"model": model or self._default_model(TRANSCRIPTIONS), "response_format": "verbose_json",
                "language": language, "prompt": prompt,
                "temperature": None if temperature is None else str(temperature)}
        data: list[tuple[str, str]] = [(k, v) for k, v in form.items() if v is not None]
        data += [("timestamp_granularities[]", "segment")] + ([("timestamp_granularities[]", "word")] if words else [])
        return self._transport.request(
            "POST", TRANSCRIPTIONS, Transcription, files=[("file", (filename, content, "application/octet-stream"))],
            data=data, timeout=timeout, headers=extra_headers,
        )

    def _post(
        self,
        path: str,
        request: _Request,
        result: type[M],
        timeout: TimeoutTypes | None,
        headers: Mapping[str, str] | None,
    ) -> M:
        return self._transport.request(
            "POST", path, result, json=request.to_body(), timeout=timeout, headers=headers
        )

    def _stream(
        self,
        path: str,
        request: _Request,
        chunk: type[M],
        timeout: TimeoutTypes | None,
        headers: Mapping[str, str] | None,
    ) -> Stream[M]:
        return self._transport.stream(
            path, chunk, json=request.to_body(), timeout=timeout, headers=headers
        )

    def _detect(
        self,
        route: str,
        result: type[D],
        images: ImageInput | Sequence[ImageInput],
        form: DetectionRequest,
        timeout: TimeoutTypes | None,
        headers: Mapping[str, str] | None,
    ) -> D:
        """Upload the images with the form; the result keeps them (in memory) for its notebook view."""
        parts = _image_parts(images)
        found = self._transport.request(
            "POST", route, result, files=[("image", part) for part in parts], data=form.to_form(),
            timeout=timeout, headers=headers,
        )
        found._attach_images([(content, content_type) for _, content, content_type in parts])
        return found

    def _default_model(self, route: str) -> str:
        return self._directory.default_for(route, self.base_url, self.models)


class _ModelDirectory:
    """Answers "which model serves this route?" from one ``GET /v1/models`` per client."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: list[ModelInfo] | None = None

    def default_for(self, route: str, base_url: str, fetch: Callable[[], list[ModelInfo]]) -> str:
        # The lock is held during the fetch so that concurrent first calls send one request.
        with self._lock:
            if self._models is None:
                self._models = fetch()
            models = self._models
        for info in models:
            if info.endpoints is not None and route in info.endpoints:
                return info.id
        raise MaasError(_no_default_model(route, base_url, models))


def _no_default_model(route: str, base_url: str, models: list[ModelInfo]) -> str:
    if not models:
        return f"The server at {base_url} lists no models; pass model= explicitly."
    if all(info.endpoints is None for info in models):
        return (
            f"The server at {base_url} does not say which of its models serves {route} (its "
            "/v1/models entries carry no `endpoints`, as on OpenAI-compatible servers): pass "
            f"model= explicitly, e.g. model={models[0].id!r}."
        )
    served = ", ".join(f"{info.id} ({info.task or 'unknown task'})" for info in models)
    return f"No model on {base_url} serves {route}; it serves: {served}."


# ---------------------------------------------------------------------- argument helpers


def _check_base_url(base_url: str) -> str:
    if not base_url.startswith(("http://", "https://")):
        raise MaasError(
            f"base_url must start with http:// or https://, got {base_url!r} "
            "(set it with base_url= or MAAS_BASE_URL)."
        )
    return normalize_base_url(base_url)


def _check_retries(max_retries: int) -> int:
    if max_retries < 0:
        raise ValueError(f"max_retries must be 0 or more, got {max_retries}")
    return max_retries


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
