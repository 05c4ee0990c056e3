"""maas_client: the typed Python client of a maas server (or any OpenAI-compatible one).

::

    import maas_client as maas

    client = maas.Client()  # MAAS_BASE_URL (default http://127.0.0.1:8000), MAAS_API_KEY
    client.generate("Once upon a time", max_tokens=20).text
    client.chat([{"role": "user", "content": "Hi"}]).text
    client.embed(["a", "b"]).vectors
    client.classify_text("I love it").label                     # "positive"
    client.classify_text("It rained", labels=["weather", "sports"]).labels
    client.classify_image("cat.jpg").labels
    client.extract_entities("Angela Merkel visited Paris.").entities
    client.detect_objects("street.jpg").objects
    client.compare_faces("me.jpg", "passport.jpg").same_person

Importing this package loads requests, tenacity and pydantic only. See docs/client.md.
"""

from __future__ import annotations

from ._streaming import Stream
from ._transport import Timeout
from ._version import __version__
from .client import Client, ImageInput, MessageInput
from .errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APIStreamError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    MaasError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTooLargeError,
    ServiceUnavailableError,
    UnprocessableEntityError,
)
from .types import (
    Box,
    ChatCompletion,
    ChatCompletionChunk,
    ChatMessage,
    Classification,
    ClassificationItem,
    Completion,
    CompletionChunk,
    DetectedObject,
    Embedding,
    Embeddings,
    Entities,
    Entity,
    EntityResult,
    Explanation,
    Face,
    FaceComparison,
    FaceDetectionItem,
    FaceDetections,
    LabelScore,
    ModelInfo,
    ObjectDetectionItem,
    ObjectDetections,
    Point,
    TokenWeight,
    Transcription,
    TranscriptionSegment,
    TranscriptionWord,
    Usage,
)

__all__ = [
    "__version__",
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APIStreamError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "Box",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatMessage",
    "Classification",
    "ClassificationItem",
    "Client",
    "Completion",
    "CompletionChunk",
    "DetectedObject",
    "Embedding",
    "Embeddings",
    "Entities",
    "Entity",
    "EntityResult",
    "Explanation",
    "Face",
    "FaceComparison",
    "FaceDetectionItem",
    "FaceDetections",
    "ImageInput",
    "InternalServerError",
    "LabelScore",
    "MaasError",
    "MessageInput",
    "ModelInfo",
    "NotFoundError",
    "ObjectDetectionItem",
    "ObjectDetections",
    "PermissionDeniedError",
    "Point",
    "RateLimitError",
    "RequestTooLargeError",
    "ServiceUnavailableError",
    "Stream",
    "Timeout",
    "TokenWeight",
    "Transcription",
    "TranscriptionSegment",
    "TranscriptionWord",
    "UnprocessableEntityError",
    "Usage",
]
