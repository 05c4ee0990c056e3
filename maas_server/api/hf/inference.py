"""Hugging Face's inference addresses: ``/models/NAME``, as huggingface_hub's InferenceClient calls them.

``InferenceClient(base_url=f"{server}/models/NAME")`` posts every task to that one URL, in the task's
own shape (schemas.py): which task a call is follows from what the named model serves
(:data:`TASKS`, the usual one first) and, for an embedding model, from the body (candidate labels
make it zero-shot classification). Besides it:

- ``/models/NAME/generate`` and ``/models/NAME/generate_stream``: text-generation-inference's routes;
- ``/models/NAME/embed``: text-embeddings-inference's;
- ``/models/NAME/v1/chat/completions``: chat, where the client sends it (the model is the one in the URL).

Everything here is translation: the work is queued on the same runners as the /v1 routes, and limits,
accounting and errors are theirs. Faces and voices are personal data: bodies under ``/models/`` are
never logged (every record here says `personal_data`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from flask import request

from ...errors import APIError
from ...models.contract import InvalidInput, Method
from ...models.entities_io import EXTRACT_ENTITIES, EntityItem
from ...models.generation_io import GENERATE, Choice, GenerationRequest, GenerationResult, TokenLogprob
from ...models.image_io import CLASSIFY_IMAGE, DETECT_FACES, DETECT_OBJECTS, DetectionQuery, Detections
from ...models.ocr_io import READ_TEXT, TextQuery
from ...models.speech_io import TRANSCRIBE
from ...models.text_io import CLASSIFY_TEXT, EMBED, ZERO_SHOT_TEXT, Scores, TextItem
from ...runtime.registry import ModelEntry
from .._common import check_count, json_response, parse_json, read_body, resolve_model, state, submit, wait_all
from ..detect import in_original_pixels
from ..endpoints import Family
from ..entities import admit_entity_texts
from ..forms import FILE, MODEL_IN_PATH
from ..generation.completions import Shaper, answer_chat, check_max_tokens, respond, stream_error
from ..generation.schemas import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest
from ..generation.structured import admitted_schema
from ..images import CheckedImage, ImageLimits, check_images, decode_base64_image, decode_images, reserve_image_memory
from ..metering import report_usage
from ..speech import transcribe
from ..wire import Usage, dump
from . import schemas as hf

family = Family("hf", __name__)

_MODEL = {"parameters": (MODEL_IN_PATH,), "personal_data": True}  # every route here names the model in its path
FILE_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")  # forms are not HF's shapes


@family.post("/models/{model}/generate", "Text generation in text-generation-inference's shape",
               request=hf.TGIRequest, response=hf.TGIGenerated, serves=(GENERATE,), **_MODEL)
def generate(model: str) -> Any:
    return _text_generation(resolve_model(model), listed=False, streamed=False)


@family.post("/models/{model}/generate_stream", "Text generation in text-generation-inference's shape, as "
               "server-sent events (the last carries the whole text and details)", request=hf.TGIRequest,
               events=hf.TGIStreamEvent, done=False, serves=(GENERATE,), **_MODEL)
def generate_stream(model: str) -> Any:
    return _text_generation(resolve_model(model), listed=False, streamed=True)


@family.post("/models/{model}/embed", "Embeddings in text-embeddings-inference's shape: one vector per input",
               request=hf.HFFeatureExtractionRequest, response=hf.HFVectors, serves=(EMBED,), **_MODEL)
def embed(model: str) -> Any:
    return _feature_extraction(resolve_model(model))


@family.post("/models/{model}/v1/chat/completions", "Chat completion with the model named in the URL (where "
               "huggingface_hub's chat_completion posts for a model URL); as /v1/chat/completions",
               request=ChatCompletionRequest, response=ChatCompletion, events=ChatCompletionChunk,
               serves=(GENERATE,), **_MODEL)
def chat_completions(model: str) -> Any:
    body = parse_json(ChatCompletionRequest)
    # The URL names the model; huggingface_hub puts "dummy" (or a hub id) in the body, as TGI ignores it.
    return answer_chat(body.model_copy(update={"model": model}))


# -- text generation (TGI)

def _text_generation(entry: ModelEntry, *, listed: bool = True, streamed: bool | None = None) -> Any:
    body = parse_json(hf.TGIRequest)
    params = body.parameters
    check_max_tokens(params.max_new_tokens, "parameters.max_new_tokens")
    streamed = body.stream if streamed is None else streamed
    wants_tokens = streamed or params.details
    generation = GenerationRequest(
        prompt=body.inputs, max_tokens=params.max_new_tokens,
        temperature=(params.temperature or 1.0) if params.samples else 0.0, top_p=params.top_p or 1.0,
        stop=tuple(params.stop), seed=params.seed, logprobs=(params.top_n_tokens or 0) if wants_tokens else None,
        json_schema=admitted_schema(params.grammar.schema_text(), "parameters.grammar") if params.grammar else None,
        json_schema_field="parameters.grammar")
    shaper = _TGIShaper(entry.config.name, params, body.inputs, listed)
    return respond(entry, [generation], shaper, streamed)


class _TGIShaper(Shaper):
    """TGI's answers: ``{"generated_text", "details"}``, or a stream of token events.

    A stream's last event carries the whole text and the details as well as its own piece, so each
    event is sent when the next one (or the end) arrives: one decode step late.
    """

    ends_with_done = False  # TGI's streams just end

    def __init__(self, model: str, params: hf.TGIParameters, prompt: str, listed: bool) -> None:
        super().__init__("", model, 1)
        self.params, self.listed = params, listed
        self.prefix = prompt if params.return_full_text else ""
        self.held: hf.TGIStreamEvent | None = None
        self.sent = 0

    def full(self, results: list[GenerationResult]) -> Any:
        choice = results[0].choices[0]
        details = self._details(choice) if self.params.details else None
        answer = hf.TGIGenerated(generated_text=self.prefix + choice.text, details=details)
        return dump(hf.TGIGeneratedList([answer])) if self.listed else dump(answer)

    def text_chunks(self, index: int, text: str, tokens: Sequence[TokenLogprob]) -> Iterator[dict[str, Any]]:
        self.sent += 1
        top = [_tgi_token(a, lp) for a, lp in tokens[-1].top] if tokens and self.params.top_n_tokens else None
        event = hf.TGIStreamEvent(index=self.sent, token=_piece(text, tokens), top_tokens=top)
        held, self.held = self.held, event
        if held is not None:
            yield dump(held)

    def finish_chunks(self, prompt_index: int, result: GenerationResult) -> Iterator[dict[str, Any]]:
        choice = result.choices[0]
        # Nothing generated but the end of sequence: an empty piece carries the end (id -1: no token).
        last = self.held or hf.TGIStreamEvent(index=1, token=hf.TGIToken(id=-1, text="", logprob=0.0, special=True))
        details = hf.TGIStreamDetails(finish_reason=_finish_reason(choice),
                                      generated_tokens=choice.completion_tokens, seed=self._seed())
        self.held = None
        yield dump(last.model_copy(update={"generated_text": self.prefix + choice.text, "details": details}))

    def error_chunk(self, exc: BaseException) -> dict[str, Any]:
        invalid = isinstance(exc, InvalidInput)
        message = stream_error(exc)["error"]["message"]  # never an internal error's own text
        return dump(hf.TGIStreamError(error=message, error_type="validation" if invalid else "generation"))

    def _details(self, choice: Choice) -> hf.TGIDetails:
        top = [[_tgi_token(a, lp) for a, lp in t.top] for t in choice.tokens] if self.params.top_n_tokens else None
        return hf.TGIDetails(finish_reason=_finish_reason(choice), generated_tokens=choice.completion_tokens,
                             seed=self._seed(), tokens=[_tgi_token(t.token, t.logprob, t.id) for t in choice.tokens],
                             top_tokens=top)

    def _seed(self) -> int | None:
        return self.params.seed if self.params.samples else None


def _piece(text: str, tokens: Sequence[TokenLogprob]) -> hf.TGIToken:
    """One streamed piece of final text; several tokens make one piece when a character spans them."""
    last_id = tokens[-1].id if tokens and tokens[-1].id is not None else -1
    return hf.TGIToken(id=last_id, text=text, logprob=sum(t.logprob for t in tokens))


def _tgi_token(text: str, logprob: float, token_id: int | None = None) -> hf.TGIToken:
    return hf.TGIToken(id=-1 if token_id is None else token_id, text=text, logprob=logprob)


def _finish_reason(choice: Choice) -> hf.TGIFinishReason:
    if choice.finish_reason == "length":
        return "length"
    return "stop_sequence" if choice.stop_sequence is not None else "eos_token"


# -- text tasks

def _embedding_task(entry: ModelEntry) -> Any:
    """An embedding model does feature extraction, or zero-shot classification when labels are given."""
    body = _json_object()
    parameters = body.get("parameters")
    if isinstance(parameters, dict) and "candidate_labels" in parameters:
        return _zero_shot(entry)
    return _feature_extraction(entry)


def _feature_extraction(entry: ModelEntry) -> Any:
    body = parse_json(hf.HFFeatureExtractionRequest)
    texts = _texts(body.inputs)
    dimensions = entry.description.dimensions if entry.description else None
    if body.dimensions is not None and body.dimensions != dimensions:
        raise APIError(f"model {entry.config.name!r} produces {dimensions}-dimensional vectors only; omit "
                       "`dimensions`", param="dimensions", code="unsupported_dimensions")
    vectors = wait_all(submit(entry, EMBED, texts))
    _report(entry, sum(v.tokens for v in vectors))
    return json_response(hf.HFVectors([v.values for v in vectors]))


def _zero_shot(entry: ModelEntry) -> Any:
    body = parse_json(hf.HFZeroShotRequest)
    params = body.parameters
    check_count(len(params.candidate_labels), "label", "parameters.candidate_labels")  # each is embedded
    template = params.hypothesis_template or "{}"
    hypotheses = {template.replace("{}", label): label for label in params.candidate_labels}
    [scores] = _classified(entry, ZERO_SHOT_TEXT, [TextItem(body.inputs, tuple(hypotheses))])
    return json_response(hf.HFLabelScores([hf.HFLabelScore(label=hypotheses[h], score=p) for h, p in scores.labels]))


def _text_classification(entry: ModelEntry) -> Any:
    if _has_candidate_labels() and entry.offers(ZERO_SHOT_TEXT):
        return _zero_shot(entry)
    body = parse_json(hf.HFTextClassificationRequest)
    results = _classified(entry, CLASSIFY_TEXT, [TextItem(text) for text in _texts(body.inputs)])
    top_k = body.parameters.top_k
    return json_response(hf.HFTextClassifications([_label_scores(r, top_k) for r in results]))


def _token_classification(entry: ModelEntry) -> Any:
    body = parse_json(hf.HFTokenClassificationRequest)
    params = body.parameters
    aggregation = params.aggregation_strategy or "simple"
    texts = _texts(body.inputs)
    admit_entity_texts(texts, "inputs")
    results = wait_all(submit(entry, EXTRACT_ENTITIES, [EntityItem(text, aggregation) for text in texts]))
    _report(entry, sum(r.tokens for r in results))
    ignored = set(params.ignore_labels)
    key = "entity_group" if aggregation == "simple" else "entity"
    found = [[hf.HFEntity(**{key: e.label}, score=e.score, word=e.text, start=e.start, end=e.end)
              for e in result.entities if e.label not in ignored] for result in results]
    return json_response(hf.HFEntities(found[0] if isinstance(body.inputs, str) else found))


def _classified(entry: ModelEntry, method: Method[TextItem, Scores], items: list[TextItem]) -> list[Scores]:
    results = wait_all(submit(entry, method, items))
    _report(entry, sum(r.tokens for r in results))
    return results


def _label_scores(scores: Scores, top_k: int | None) -> list[hf.HFLabelScore]:
    return [hf.HFLabelScore(label=label, score=score) for label, score in scores.labels[:top_k]]


def _texts(inputs: str | list[str]) -> list[str]:
    texts = [inputs] if isinstance(inputs, str) else inputs
    limit = state().config.max_inputs
    if not 0 < len(texts) <= limit:
        raise APIError(f"send between 1 and {limit} texts (max_inputs)", param="inputs", code="too_many_inputs")
    return texts


# -- image tasks: the image itself as the body, or JSON with it in base64 and the parameters

DEFAULT_IMAGE_TOP_K = 5  # as the Hugging Face image-classification pipeline answers


def _image_classification(entry: ModelEntry) -> Any:
    body, image = _image_request(hf.HFImageClassificationRequest)
    results = wait_all(submit(entry, CLASSIFY_IMAGE, _decoded(image)))
    _report(entry, 1)
    return json_response(hf.HFLabelScores(_label_scores(results[0], body.parameters.top_k or DEFAULT_IMAGE_TOP_K)))


def _object_detection(entry: ModelEntry) -> Any:
    return _detection(entry, DETECT_OBJECTS)


def _face_detection(entry: ModelEntry) -> Any:
    return _detection(entry, DETECT_FACES)


def _detection(entry: ModelEntry, method: Method[DetectionQuery, Detections]) -> Any:
    body, image = _image_request(hf.HFObjectDetectionRequest)
    threshold = body.parameters.threshold
    queries = (DetectionQuery(decoded, threshold if threshold is not None else DetectionQuery.score_threshold)
               for decoded in _decoded(image))
    [found] = wait_all(submit(entry, method, queries))
    _report(entry, 1)
    detected = [hf.HFDetected(label=d.label, score=d.score, box=hf.HFBox(
        xmin=round(d.box.x1), ymin=round(d.box.y1), xmax=round(d.box.x2), ymax=round(d.box.y2)))
        for d in in_original_pixels(found, image)]
    return json_response(hf.HFDetections(detected))


def _image_to_text(entry: ModelEntry) -> Any:
    """An OCR model's reading, in image-to-text's shape: [{"generated_text": the text in reading order}]."""
    _, image = _image_request(hf.HFImageClassificationRequest)  # its parameters (top_k) do not apply: ignored
    [found] = wait_all(submit(entry, READ_TEXT, (TextQuery(decoded) for decoded in _decoded(image))))
    _report(entry, 1)
    return json_response(hf.TGIGeneratedList([hf.TGIGenerated(generated_text=found.text)]))


def _image_request(schema: type[hf.HFImageClassificationRequest] | type[hf.HFObjectDetectionRequest]
                   ) -> tuple[Any, CheckedImage]:
    """The request's parameters (defaults for a bare image) and its checked, not yet decoded, image."""
    if request.is_json:
        body = parse_json(schema)
        data = decode_base64_image(body.inputs, "inputs")
    else:
        _refuse_forms()
        body, data = schema.model_validate({"inputs": ""}), read_body()  # the parameters' defaults
    config = state().config
    limits = ImageLimits(config.max_image_bytes, config.max_image_pixels, config.max_request_pixels)
    [image] = check_images([(data, "inputs")], limits)
    reserve_image_memory([image])
    return body, image


def _decoded(image: CheckedImage) -> Iterator[Any]:
    return decode_images([image], state().config.image_max_side)


# -- speech

def _speech_recognition(entry: ModelEntry) -> Any:
    if request.is_json:
        raise APIError("send the audio file itself as the request body (Hugging Face's automatic speech "
                       "recognition); for a form, use /v1/audio/transcriptions", code="invalid_content_type")
    _refuse_forms()
    transcripts, _ = transcribe(entry, read_body(), "transcribe", None, None, 0.0, False)
    chunks = [hf.HFSpeechChunk(text=seg.text, timestamp=(seg.start, seg.end))
              for transcript in transcripts for seg in transcript.segments]
    return json_response(hf.HFSpeechOutput(text="".join(c.text for c in chunks).strip(), chunks=chunks))


# -- shared

def _refuse_forms() -> None:
    if request.mimetype in FILE_TYPES:
        raise APIError("send the file itself as the request body (Hugging Face's shape), or JSON with it in "
                       "base64 under `inputs`; forms go to the /v1 routes", code="invalid_content_type")


def _json_object() -> dict[str, Any]:
    """The body as a JSON object, to choose a task by (parse_json then validates it as that task's)."""
    if not request.is_json:
        raise APIError("send a JSON body with Content-Type: application/json", code="invalid_content_type")
    read_body()
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else {}


def _has_candidate_labels() -> bool:
    parameters = _json_object().get("parameters") if request.is_json else None
    return isinstance(parameters, dict) and "candidate_labels" in parameters


def _report(entry: ModelEntry, units: int) -> None:
    report_usage(entry.config.name, Usage(prompt_tokens=units, total_tokens=units))


# What /models/NAME does for a model, by the methods it offers (its usual task first). A new task with a
# Hugging Face shape adds its line here.
TASKS: list[tuple[Method[Any, Any], Callable[[ModelEntry], Any]]] = [
    (GENERATE, _text_generation),
    (EMBED, _embedding_task),
    (CLASSIFY_TEXT, _text_classification),
    (EXTRACT_ENTITIES, _token_classification),
    (CLASSIFY_IMAGE, _image_classification),
    (DETECT_OBJECTS, _object_detection),
    (DETECT_FACES, _face_detection),
    (TRANSCRIBE, _speech_recognition),
    (READ_TEXT, _image_to_text),
]


@family.post("/models/{model}", "Hugging Face's inference shapes, as huggingface_hub's InferenceClient("
               "base_url=.../models/NAME) sends them: the task is the named model's (text generation with TGI's "
               "parameters, feature extraction, zero-shot and text classification, token classification, image "
               "classification, object and face detection, speech recognition, image to text (OCR)); image and audio "
               "files may be the body itself", request=hf.TGIRequest, response=hf.TGIGeneratedList,
               events=hf.TGIStreamEvent, done=False, request_alternatives=hf.HF_REQUESTS[1:],
               alternatives=hf.HF_ANSWERS[1:], raw_body=FILE, serves=tuple(method for method, _ in TASKS), **_MODEL)
def task(model: str) -> Any:
    """Whatever the named model does, in Hugging Face's shape for that task."""
    entry = state().registry.get(model)
    offered = [(method, handler) for method, handler in TASKS if entry is not None and entry.offers(method)]
    if entry is not None and not offered:
        raise APIError(f"model {model!r} is a {entry.config.task} model, which has no Hugging Face inference shape "
                       "here; use its /v1 route", param="model", code="wrong_model_task")
    method, handler = offered[0] if offered else TASKS[0]
    return handler(resolve_model(model, method))  # 404 unknown, 503 still loading
