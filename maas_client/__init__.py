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
    client.read_text("invoice.png").text
    client.label_roles("The boy broke the window.").verbs

    async with maas.AsyncClient() as client:    # the same methods, awaited: pip install 'maas-kit[async]'
        reply = await client.chat("Hi")

Importing this package loads requests, tenacity and pydantic only (httpx when an AsyncClient is
made). See docs/client.md.
"""

from __future__ import annotations

from ._base_client import Timeout
from ._response import RawResponse
from ._streaming import AsyncStream, Stream
from ._version import __version__
from .async_client import AsyncClient
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
    StructuredOutputError,
    UnprocessableEntityError,
)
from .types import (
    AdminKey,
    AdminUsage,
    AuditEntry,
    Box,
    ChatCompletion,
    ChatCompletionChunk,
    ChatMessage,
    Classification,
    ClassificationItem,
    Completion,
    CompletionChunk,
    CreatedKey,
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
    FunctionCall,
    FunctionDefinition,
    LabelScore,
    ModelInfo,
    ObjectDetectionItem,
    ObjectDetections,
    PiiResult,
    PiiResults,
    PiiSpan,
    Point,
    ResponseContent,
    ResponseEvent,
    ResponseObject,
    ResponseOutputItem,
    ResponseUsage,
    RoleArgument,
    RoleLabellingItem,
    RoleLabellings,
    SceneEvidence,
    SceneItem,
    Scenes,
    StreamSummary,
    TextLine,
    TextReadingItem,
    TextReadings,
    TokenWeight,
    Tool,
    ToolCall,
    Transcription,
    TranscriptionSegment,
    TranscriptionWord,
    Usage,
    UsageBucket,
    UsageReport,
    UsageRow,
    VerbFrame,
)

__all__ = [
    "__version__",
    "AdminKey",
    "AdminUsage",
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APIStreamError",
    "APITimeoutError",
    "AsyncClient",
    "AsyncStream",
    "AuditEntry",
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
    "CreatedKey",
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
    "FunctionCall",
    "FunctionDefinition",
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
    "PiiResult",
    "PiiResults",
    "PiiSpan",
    "Point",
    "RateLimitError",
    "RawResponse",
    "RequestTooLargeError",
    "ResponseContent",
    "ResponseEvent",
    "ResponseObject",
    "ResponseOutputItem",
    "ResponseUsage",
    "RoleArgument",
    "RoleLabellingItem",
    "RoleLabellings",
    "SceneEvidence",
    "SceneItem",
    "Scenes",
    "ServiceUnavailableError",
    "Stream",
    "StreamSummary",
    "StructuredOutputError",
    "TextLine",
    "TextReadingItem",
    "TextReadings",
    "Timeout",
    "TokenWeight",
    "Tool",
    "ToolCall",
    "Transcription",
    "TranscriptionSegment",
    "TranscriptionWord",
    "UnprocessableEntityError",
    "Usage",
    "UsageBucket",
    "UsageReport",
    "UsageRow",
    "VerbFrame",
]
