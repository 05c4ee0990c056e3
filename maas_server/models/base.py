"""What every task adapter shares, and the types that cross the runtime boundary. Imports no torch.

An adapter is built by ``load(config, device, dtype, cache_dir)``, describes itself once
(:class:`ModelDescription`) and offers its work as typed :class:`Method` objects, each implemented
as a *batch method*: ``prepare`` turns one request item into model input (tokenizing, checking its
length) and may raise :class:`InvalidInput` for that item alone; ``run`` takes a list of prepared
items and returns one output per item, in order. Generation is a *step method* instead: a batch
that requests join and leave between decode steps, which returns its progress as plain events
(:class:`TextDelta`) and never calls out. The runner (runtime/) decides what goes into a batch.

Everything here is plain data, so a request, its events and its result can cross a process boundary.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar

# Why a generated sequence ended: a stop condition (EOS or a stop string) or its token budget. The
# wire schemas use this same type, so a new reason must be added to the API on purpose.
FinishReason = Literal["stop", "length"]

# How entities are reported: "simple" merges a B-/I- run of tokens into one span; "none" gives one row
# per token that is inside an entity, labelled with its IOB tag ("B-PERSON"). The wire uses this type too.
Aggregation = Literal["simple", "none"]


class InvalidInput(ValueError):
    """One request item cannot be processed as given (too long, wrong labels...).

    `code` is a stable machine-readable reason and `param` names the offending field; the wire
    layer turns this into a 400 with the message unchanged, so say what to change.
    """

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        self.code = code


class ItemFailed(RuntimeError):
    """One item failed on its own (the rest of its batch did not): the same input will fail again.

    The runner reports it to that item's caller alone; the wire answers 500 with
    ``x-should-retry: false`` so that clients do not resend a request that cannot succeed.
    """


def failed_alone(exc: Exception) -> Exception:
    """An error one item raised on its own: input errors stay as they are, others become ItemFailed."""
    if isinstance(exc, (InvalidInput, ItemFailed)):
        return exc
    failed = ItemFailed(f"the model failed on this input ({type(exc).__name__}: {exc})")
    failed.__cause__ = exc
    return failed


@dataclass(frozen=True)
class TextItem:
    """A text to classify and, optionally, the candidate labels (zero-shot, or a subset)."""

    text: str
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Vector:
    """An embedding and the number of tokens it cost (for `usage`)."""

    values: list[float]
    tokens: int


@dataclass(frozen=True)
class Scores:
    """Labels with scores, best first, and what it cost (tokens, or 1 per image)."""

    labels: list[tuple[str, float]]
    tokens: int


@dataclass(frozen=True)
class DetectionQuery:
    """An image to find things in, and how picky to be (thresholds already checked by the wire layer)."""

    image: Any  # a decoded RGB PIL image
    score_threshold: float = 0.25
    iou_threshold: float = 0.45  # boxes of one label that overlap more than this are one thing (NMS)
    max_detections: int = 100


@dataclass(frozen=True)
class Box:
    """A rectangle in pixels of the image the model was given: x to the right, y down."""

    x1: float
    y1: float
    x2: float
    y2: float

    def scaled(self, sx: float, sy: float) -> Box:
        return Box(self.x1 * sx, self.y1 * sy, self.x2 * sx, self.y2 * sy)


@dataclass(frozen=True)
class Detected:
    """One thing found: its label, the model's confidence, its box, and for faces five landmarks
    (eyes, nose, mouth corners: (x, y) each) and optionally an embedding."""

    label: str
    score: float
    box: Box
    landmarks: tuple[tuple[float, float], ...] | None = None
    embedding: tuple[float, ...] | None = None


@dataclass(frozen=True)
class Detections:
    """Everything found in one image, best first, with the size of the image the model was given."""

    width: int
    height: int
    objects: list[Detected]


@dataclass(frozen=True)
class ImageQuestion:
    """An image to classify and explain; `overlay` asks for a PNG heatmap drawn over it too."""

    image: Any  # a decoded PIL image
    overlay: bool = False


@dataclass(frozen=True)
class ImageExplanation:
    """Where the model looked for `label`: a grid of weights in [0, 1] (1: most important) over the image as
    the model saw it (after its resize and crop), rows top to bottom, and optionally that view as a PNG heatmap."""

    label: str
    grid: list[list[float]]
    overlay_png: bytes | None = None


@dataclass(frozen=True)
class TokenWeight:
    """One input token's share in a text's top label: `weight` in [-1, 1], > 0 for, < 0 against it; `start`
    and `end` are character offsets into the text."""

    text: str
    start: int
    end: int
    weight: float


@dataclass(frozen=True)
class TextExplanation:
    label: str
    tokens: list[TokenWeight]


@dataclass(frozen=True)
class Explained:
    """A classification and the explanation of its top label."""

    scores: Scores
    explanation: ImageExplanation | TextExplanation


@dataclass(frozen=True)
class EntityItem:
    """A text to find named entities in, and how to report them."""

    text: str
    aggregation: Aggregation = "simple"


@dataclass(frozen=True)
class Entity:
    """A span of the input: ``text == input[start:end]`` (character offsets), its label and score.

    `score` is the model's probability for the label (the mean over the span's tokens), or None
    when the model gives none (spaCy's greedy transition-based NER decides without scores).
    """

    text: str
    label: str
    start: int
    end: int
    score: float | None


@dataclass(frozen=True)
class Entities:
    """The entities of one text, in order, and the number of tokens it cost (for `usage`)."""

    entities: list[Entity]
    tokens: int


# -- personal data (PII): what a text holds that identifies a person, found by patterns with checks
# (checksums, formats) and by a named-entity model, and optionally replaced in the text.

# How found spans are replaced: "type" writes ``<TYPE>`` (``<PERSON>``), "mask" repeats one character
# over each of the span's characters. The wire uses this type too.
Redaction = Literal["type", "mask"]


@dataclass(frozen=True)
class PiiItem:
    """A text to find personal data in: which types (empty: the model's default set), the lowest score
    kept, and whether and how to redact what is found (None: find only)."""

    text: str
    types: tuple[str, ...] = ()
    score_threshold: float = 0.0
    redaction: Redaction | None = None
    mask: str = "*"


@dataclass(frozen=True)
class PiiSpan:
    """A span of personal data: its type (``EMAIL_ADDRESS``), character offsets into the input and the
    recognizer's confidence in [0, 1]. Spans of one text never overlap."""

    type: str
    start: int
    end: int
    score: float


@dataclass(frozen=True)
class PiiResult:
    """The spans of one text in order, the text with them replaced (when asked), and its tokens (`usage`)."""

    spans: list[PiiSpan]
    redacted: str | None
    tokens: int


@dataclass(frozen=True)
class TextQuery:
    """An image to read text in, and the lowest recognition score a line may have to be returned."""

    image: Any  # a decoded RGB PIL image
    score_threshold: float = 0.5


@dataclass(frozen=True)
class TextLine:
    """One line of text read in an image: its characters, the recogniser's confidence in [0, 1], and its
    polygon: four (x, y) corners, clockwise from the top left of the text, in pixels of the image given."""

    text: str
    score: float
    box: tuple[tuple[float, float], ...]

    def scaled(self, sx: float, sy: float) -> TextLine:
        return TextLine(self.text, self.score, tuple((x * sx, y * sy) for x, y in self.box))


@dataclass(frozen=True)
class ReadText:
    """The text of one image: its lines in reading order, and all of it as one string (a space between
    lines that share a row, a newline between rows), with the size of the image the model was given."""

    width: int
    height: int
    lines: list[TextLine]
    text: str

    def scaled(self, width: int, height: int) -> ReadText:
        """The same lines with their polygons in pixels of an image of `width` x `height` (the original)."""
        sx, sy = width / self.width, height / self.height
        return ReadText(width, height, [line.scaled(sx, sy) for line in self.lines], self.text)


# -- semantic roles: who did what to whom, when and where, per predicate (PropBank's role names)

@dataclass(frozen=True)
class RoleArgument:
    """One argument of a predicate: its role (ARG0, ARG1, ARG2, ARGM-TMP...) and its characters,
    ``text == input[start:end]``."""

    role: str
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class Frame:
    """One predicate (a verb) and its arguments, also as AllenNLP gives them: a BIO tag per word (``B-V`` on
    the verb) and a bracketed description ("[ARG0: The boy] [V: broke] [ARG1: the window]")."""

    verb: str
    start: int
    end: int
    tags: list[str]
    description: str
    arguments: list[RoleArgument]


@dataclass(frozen=True)
class Roles:
    """The predicates of one text, in order, over its words; `method` says how the roles were found:
    "dependency-rules" (rules over a syntactic parse) or "model" (a trained SRL model)."""

    words: list[str]
    verbs: list[Frame]
    method: str
    tokens: int


# -- scenes: the kind of place an image shows, with what gave it away

@dataclass(frozen=True)
class SceneEvidence:
    """One clue to a scene: where it comes from ("imagenet" class, "coco" object, "places365" class), its
    label and its score."""

    source: str
    label: str
    score: float


@dataclass(frozen=True)
class Scene:
    """The place an image shows: Places365's top level ("indoor", "outdoor natural", "outdoor man-made") and a
    fine label ("kitchen"), both None when nothing gives it away; how it was found ("heuristic": rules over
    ImageNet classes and COCO objects, "model": a scene classifier) and the clues, those behind the label first."""

    top_level: str | None
    label: str | None
    score: float
    method: str
    evidence: list[SceneEvidence]

In = TypeVar("In")
Out = TypeVar("Out")


@dataclass(frozen=True)
class Method(Generic[In, Out]):
    """A kind of work a model offers, typed by what one item is and what its result is.

    Routes and adapters refer to the same constants below, so a misspelt method is a NameError
    at import and a type error under mypy, and a model that lacks a method its task declares fails
    when it loads (see runtime/registry.py), never when a request runs.
    """

    name: str

    def __repr__(self) -> str:
        return f"Method({self.name!r})"


DEFAULT_LANE = "default"
EXPLAIN_LANE = "explain"  # explanations: a backward pass each, so they queue apart from plain inference


@dataclass(frozen=True)
class BatchMethod:
    """A unit of batched work: per-item preparation, then one call over the whole batch."""

    prepare: Callable[[Any], Any]
    run: Callable[[list[Any]], list[Any]]
    max_batch_size: int | None = None  # an upper bound the adapter imposes, if any
    # True when `prepare` is thread-safe and worth overlapping with compute (image resizing): it then
    # runs on the request's thread before queueing, and a slow or invalid input costs the runner nothing.
    prepare_on_caller: bool = False
    # Methods of another lane get a runner of their own (thread, queue, limits): their work never
    # waits behind the default lane's, nor delays it in the queue. Such a method must not share
    # mutable state with the default lane's (an explanation works on its own copy of the network).
    lane: str = DEFAULT_LANE


@dataclass
class StepOutput:
    """What a join or a decode step produced, keyed by the runner's handles for the items.

    ``events`` are progress in order (streamed text); ``finished`` are the items that are done, with
    their result, or with an ItemFailed when the item failed alone while the others went on.
    """

    events: list[tuple[Any, Any]] = field(default_factory=list)
    finished: list[tuple[Any, Any]] = field(default_factory=list)


class DecodeBatch(Protocol):
    """Work that advances one step at a time for everything in it (continuous batching).

    Items join between steps and leave when done; keys are the runner's handles for them.
    """

    def __len__(self) -> int: ...  # rows in the batch (the runner keeps it under its limit)

    def add(self, items: list[tuple[Any, Any]]) -> StepOutput: ...  # prefill (key, prepared) items

    def step(self) -> StepOutput: ...  # one decode step for every row

    # The items leave now, finished with what they produced so far (a client that left is billed for it).
    def cancel(self, keys: list[Any]) -> StepOutput: ...


@dataclass(frozen=True)
class StepMethod:
    """Iterative work (token generation): per-item preparation, then a batch that items join and leave."""

    prepare: Callable[[Any], Any]
    new_batch: Callable[[], DecodeBatch]
    rows: Callable[[Any], int] = lambda prepared: 1  # batch rows a prepared item occupies (n choices: n)
    max_batch_size: int | None = None  # an upper bound on rows the adapter imposes, if any
    prefill_tokens: Callable[[Any], int] = lambda prepared: 0  # work joining costs (prompt tokens x rows)
    # The decode steps x rows a prepared item may take at most (generation: max_tokens x n): what the runner's
    # wait estimate counts for it, so a queue of long generations is not taken for one of short ones.
    row_steps: Callable[[Any], int] = lambda prepared: 1
    # As for BatchMethod: prepare on the request's thread (tokenizing, compiling a grammar), so that a
    # long prompt or a slow schema never holds up the decode steps of the requests already running.
    prepare_on_caller: bool = False
    lane: str = DEFAULT_LANE


@dataclass(frozen=True)
class ModelDescription:
    """What a loaded model says about itself; the wire layer shows it (GET /v1/models) and checks requests
    against it (embedding dimensions). Fields that do not apply to a task stay None."""

    device: str
    dtype: str
    context_length: int | None = None  # tokens a request may use (prompt plus output)
    max_characters: int | None = None  # characters one input may have, for models limited in characters (spaCy)
    dimensions: int | None = None  # embedding size
    labels: tuple[str, ...] | None = None  # a classifier's own label set
    languages: tuple[str, ...] | None = None  # speech: the languages it transcribes (ISO 639-1); ("en",): English only
    translates: bool | None = None  # speech: whether it can translate what it hears into English


class TaskModel(Protocol):
    """The interface the runtime relies on."""

    task: str

    def describe(self) -> ModelDescription: ...

    def batch_methods(self) -> Mapping[Method[Any, Any], BatchMethod | StepMethod]: ...

    def warmup(self) -> None: ...


# -- generation: what crosses the runtime boundary, plain dataclasses (no torch), so the wire layer
# imports them without loading the model code.

@dataclass(frozen=True)
class TokenLogprob:
    """One generated token with its log-probability and the most likely alternatives."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()
    id: int | None = None  # its id in the model's vocabulary (TGI's shapes carry it)


@dataclass
class GenerationRequest:
    """One prompt (text, or chat messages) and its own sampling parameters."""

    prompt: str | None = None
    messages: list[dict[str, Any]] | None = None  # OpenAI chat messages: tool calls and results included
    tools: list[dict[str, Any]] | None = None  # OpenAI tool definitions the prompt offers the model
    tools_required: bool = False  # the model must call one (the wire layer also sets json_schema)
    max_tokens: int | None = None  # None: default_max_tokens, clipped to the context
    temperature: float = 1.0
    top_p: float = 1.0
    n: int = 1
    stop: tuple[str, ...] = ()
    seed: int | None = None
    logprobs: int | None = None  # None: no log-probabilities; k: chosen token plus k alternatives
    stream: bool = False  # emit TextDelta events as text becomes final (else only the result)
    # Structured output: a JSON schema (as JSON text) the generated text must follow. Each token is
    # chosen among those the schema allows at that point (constrained decoding).
    json_schema: str | None = None
    json_schema_field: str = "response_format"  # the request field it came from, named when it is refused


@dataclass(frozen=True)
class TokenIds:
    """An input given as token ids in the model's own vocabulary (OpenAI's embeddings accept them)."""

    ids: tuple[int, ...]


@dataclass(frozen=True)
class TextDelta:
    """Streamed progress of one generation: new final text of one choice, and the tokens behind it."""

    choice: int  # which of the request's n sequences
    text: str
    tokens: tuple[TokenLogprob, ...] = ()


@dataclass
class Choice:
    """The result for one sampled sequence."""

    text: str = ""
    finish_reason: FinishReason | None = None
    tokens: list[TokenLogprob] = field(default_factory=list)
    completion_tokens: int = 0
    stop_sequence: str | None = None  # the stop string that ended it ("stop" with None: end of sequence)


@dataclass
class GenerationResult:
    prompt_tokens: int
    choices: list[Choice]


# -- speech: audio is decoded by the wire layer to mono float32 samples at SAMPLE_RATE (a numpy array), cut
# into chunks of at most CHUNK_SECONDS where there is silence (FIND_SPEECH), and each chunk is one item.

SAMPLE_RATE = 16_000  # what Whisper listens at
CHUNK_SECONDS = 30.0  # Whisper hears 30 s at a time: longer audio is cut into chunks no longer than this
SpeechTask = Literal["transcribe", "translate"]


@dataclass(frozen=True)
class SpeechChunk:
    """Up to CHUNK_SECONDS of audio to transcribe (or translate into English), and how.

    `offset` is where the chunk starts in the whole audio, in seconds: timestamps come back in the whole
    audio's time. `language` None: the model detects it (an English-only model assumes English).
    """

    samples: Any  # 1-D float32 numpy array, mono, SAMPLE_RATE
    offset: float = 0.0
    task: SpeechTask = "transcribe"
    language: str | None = None
    prompt: str | None = None
    temperature: float = 0.0
    words: bool = False  # also time each word


@dataclass(frozen=True)
class SpeechWord:
    word: str
    start: float
    end: float
    probability: float


@dataclass(frozen=True)
class SpeechSegment:
    """A stretch of speech the model timed itself: seconds from the start of the whole audio."""

    start: float
    end: float
    text: str
    tokens: tuple[int, ...] = ()
    avg_logprob: float = 0.0
    compression_ratio: float = 0.0
    no_speech_prob: float = 0.0
    words: tuple[SpeechWord, ...] = ()


@dataclass(frozen=True)
class Transcript:
    """What one chunk said: its language (ISO 639-1), its segments, and the tokens generated (for `usage`)."""

    language: str
    segments: list[SpeechSegment]
    tokens: int


# -- the methods tasks offer (see models/__init__.py for which task offers which)

GENERATE: Method[GenerationRequest, GenerationResult] = Method("generate")
EMBED: Method[str | TokenIds, Vector] = Method("embed")
CLASSIFY_TEXT: Method[TextItem, Scores] = Method("classify-text")  # the model's own labels (or a subset)
ZERO_SHOT_TEXT: Method[TextItem, Scores] = Method("zero-shot-text")  # any labels the request names
CLASSIFY_IMAGE: Method[Any, Scores] = Method("classify-image")  # a PIL image, or an iterator's item
# An image classifier's pooled features (before its last layer), L2-normalised: image-to-image similarity only.
EMBED_IMAGE: Method[Any, Vector] = Method("embed-image")
DETECT_OBJECTS: Method[DetectionQuery, Detections] = Method("detect-objects")
DETECT_FACES: Method[DetectionQuery, Detections] = Method("detect-faces")  # boxes, scores, five landmarks
EMBED_FACES: Method[DetectionQuery, Detections] = Method("embed-faces")  # the same, each with its embedding
# Explanations cost a backward pass: adapters run them in the EXPLAIN_LANE, on a copy of the network.
EXPLAIN_TEXT: Method[TextItem, Explained] = Method("explain-text")
EXPLAIN_IMAGE: Method[ImageQuestion, Explained] = Method("explain-image")
EXTRACT_ENTITIES: Method[EntityItem, Entities] = Method("extract-entities")
# Speech: where to cut long audio (sample ranges, each at most CHUNK_SECONDS, cut in silences), then each chunk's words.
FIND_SPEECH: Method[Any, list[tuple[int, int]]] = Method("find-speech")
TRANSCRIBE: Method[SpeechChunk, Transcript] = Method("transcribe")
FIND_PII: Method[PiiItem, PiiResult] = Method("find-pii")  # personal data: found, and redacted if asked
READ_TEXT: Method[TextQuery, ReadText] = Method("read-text")  # OCR: lines, their polygons, the text in reading order
LABEL_ROLES: Method[str, Roles] = Method("label-roles")  # semantic roles: a text's predicates and their arguments
CLASSIFY_SCENE: Method[Any, Scene] = Method("classify-scene")  # a scene classifier (Places365): a PIL image
