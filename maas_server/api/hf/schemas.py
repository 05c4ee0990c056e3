"""Hugging Face's inference shapes, as huggingface_hub's InferenceClient sends and parses them (api/hf/inference.py).

Requests are ``{"inputs": ..., "parameters": {...}}`` (text generation adds ``stream``; feature
extraction, as TEI's ``/embed``, puts its parameters at the top). Parameters this server cannot
honour are refused with a 400 naming them, never silently dropped; a null is the same as leaving a
parameter out (the client drops them itself). Answers are the bare lists and objects the client
parses, not our envelopes.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, RootModel, ValidationInfo, field_validator, model_validator

from ..generation.schemas import Logprob, small_schema
from ..wire import OpenAIRequestBody, ResponseBody

Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class _Refuses(OpenAIRequestBody):
    """Parameters with a value we cannot honour: anything but their neutral value is a 400 naming them."""

    NEUTRAL: ClassVar[dict[str, Any]] = {}  # name -> the value that changes nothing

    @field_validator("*")
    @classmethod
    def _refuse_unsupported(cls, value: Any, info: ValidationInfo) -> Any:
        neutral = cls.NEUTRAL.get(info.field_name or "", value)
        if value != neutral:
            raise ValueError(f"not supported by this server (only {neutral!r}); leave it out")
        return value


# -- text generation: TGI's shapes (POST /models/NAME, /generate, /generate_stream)

class TGIGrammar(OpenAIRequestBody):
    type: Literal["json"] = Field(description="only JSON schemas are enforced here; `regex` is refused")
    value: dict[str, Any] | str = Field(description="the JSON schema the text must follow")

    @field_validator("value")
    @classmethod
    def _small(cls, value: dict[str, Any] | str) -> dict[str, Any] | str:
        small_schema(value, "the grammar")
        return value

    def schema_text(self) -> str:
        return self.value if isinstance(self.value, str) else json.dumps(self.value)


class TGIParameters(_Refuses):
    """TGI's generation parameters. Sampling is on when `do_sample` is true or `temperature`/`top_p`
    change anything (as TGI decides); otherwise the choice is greedy."""

    NEUTRAL: ClassVar[dict[str, Any]] = {
        "best_of": 1, "repetition_penalty": 1.0, "frequency_penalty": 0.0, "top_k": 0, "typical_p": 1.0,
        "truncate": 0, "watermark": False, "decoder_input_details": False, "adapter_id": ""}

    max_new_tokens: int | None = Field(None, ge=1)
    temperature: Positive | None = None
    top_p: float | None = Field(None, gt=0, le=1, allow_inf_nan=False)
    do_sample: bool = False
    seed: int | None = Field(None, ge=0, le=2**64 - 1)  # TGI's u64, within what torch.Generator accepts
    stop: list[str] = Field(default_factory=list, max_length=4)
    return_full_text: bool = False
    details: bool = False
    top_n_tokens: int | None = Field(None, ge=0, le=20)
    grammar: TGIGrammar | None = None
    # Accepted only at their neutral value (NEUTRAL): the client sends them only when set.
    best_of: int | None = None
    repetition_penalty: float | None = None
    frequency_penalty: float | None = None
    top_k: int | None = None
    typical_p: float | None = None
    truncate: int | None = None
    watermark: bool | None = None
    decoder_input_details: bool | None = None
    adapter_id: str | None = None

    @property
    def samples(self) -> bool:
        return self.do_sample or (self.temperature not in (None, 1.0)) or (self.top_p not in (None, 1.0))


class TGIRequest(OpenAIRequestBody):
    inputs: str = Field(description="the prompt")
    parameters: TGIParameters = Field(default_factory=TGIParameters)
    stream: bool = False


class TGIToken(ResponseBody):
    id: int
    text: str
    logprob: Logprob
    special: bool = False


TGIFinishReason = Literal["length", "eos_token", "stop_sequence"]


class TGIDetails(ResponseBody):
    finish_reason: TGIFinishReason
    generated_tokens: int
    seed: int | None = None
    prefill: list[TGIToken] = Field(default_factory=list, description="always empty: prompt log-probabilities "
                                                                      "are not computed")
    tokens: list[TGIToken] = Field(default_factory=list)
    top_tokens: list[list[TGIToken]] | None = None


class TGIGenerated(ResponseBody):
    generated_text: str
    details: TGIDetails | None = None


class TGIGeneratedList(RootModel[list[TGIGenerated]]):
    """POST /models/NAME's answer for text generation: a list of one (TGI's `/generate` answers the object)."""


class TGIStreamDetails(ResponseBody):
    finish_reason: TGIFinishReason
    generated_tokens: int
    seed: int | None = None


class TGIStreamEvent(ResponseBody):
    """One server-sent event of a TGI stream: a piece of text (`token.text`); the last adds the whole text and
    details."""

    index: int
    token: TGIToken
    top_tokens: list[TGIToken] | None = None
    generated_text: str | None = None
    details: TGIStreamDetails | None = None


class TGIStreamError(ResponseBody):
    """The event that ends a TGI stream whose generation failed after it began."""

    error: str
    error_type: Literal["validation", "generation"]


# -- text tasks

TextInputs = Annotated[str | list[str], Field(description="one text, or a list of texts")]


class TextClassificationParameters(_Refuses):
    # the classifiers here give softmax probabilities
    NEUTRAL: ClassVar[dict[str, Any]] = {"function_to_apply": "softmax"}

    top_k: int | None = Field(None, ge=1)
    function_to_apply: str | None = None


class HFTextClassificationRequest(OpenAIRequestBody):
    inputs: TextInputs
    parameters: TextClassificationParameters = Field(default_factory=TextClassificationParameters)


class ZeroShotParameters(_Refuses):
    NEUTRAL: ClassVar[dict[str, Any]] = {"multi_label": False}  # the scores are one softmax over the labels

    candidate_labels: list[str] = Field(min_length=1)
    hypothesis_template: str | None = Field(None, description="e.g. 'This text is about {}.': each label is "
                                                              "put in it before scoring")
    multi_label: bool | None = None

    @model_validator(mode="after")
    def _template_has_a_slot(self) -> ZeroShotParameters:
        if self.hypothesis_template is not None and "{}" not in self.hypothesis_template:
            raise ValueError("hypothesis_template must contain {} where the label goes")
        return self


class HFZeroShotRequest(OpenAIRequestBody):
    inputs: str
    parameters: ZeroShotParameters


class TokenClassificationParameters(_Refuses):
    NEUTRAL: ClassVar[dict[str, Any]] = {"stride": 0}

    aggregation_strategy: Literal["simple", "none"] | None = Field(
        None, description="`simple` (default): one span per entity; `none`: one per token")
    ignore_labels: list[str] = Field(default_factory=list)
    stride: int | None = None


class HFTokenClassificationRequest(OpenAIRequestBody):
    inputs: TextInputs
    parameters: TokenClassificationParameters = Field(default_factory=TokenClassificationParameters)


class HFFeatureExtractionRequest(_Refuses):
    """Feature extraction (POST /models/NAME) and TEI's POST /models/NAME/embed: parameters at the top."""

    NEUTRAL: ClassVar[dict[str, Any]] = {
        "normalize": True, "truncate": False, "truncation_direction": "right", "encoding_format": "float",
        "prompt_name": ""}

    inputs: TextInputs
    dimensions: int | None = Field(None, ge=1)
    normalize: bool | None = None  # the vectors are always L2-normalized
    truncate: bool | None = None  # too long an input is a 400, never cut
    truncation_direction: str | None = None
    prompt_name: str | None = None
    encoding_format: str | None = None


class HFLabelScore(ResponseBody):
    label: str
    score: float


class HFLabelScores(RootModel[list[HFLabelScore]]):
    """Image classification and zero-shot classification: labels, best first."""


class HFTextClassifications(RootModel[list[list[HFLabelScore]]]):
    """Text classification: for each text, its labels, best first."""


class HFEntity(ResponseBody):
    entity_group: str | None = Field(None, description="the entity type (aggregation `simple`)")
    entity: str | None = Field(None, description="the token's IOB tag (aggregation `none`)")
    score: float | None = Field(description="null when the model gives no probabilities (spaCy)")
    word: str
    start: int
    end: int


class HFEntities(RootModel[list[HFEntity] | list[list[HFEntity]]]):
    """Token classification: the entities of one text, or a list per text."""


class HFVectors(RootModel[list[list[float]]]):
    """Feature extraction: one vector per input (a list of one for a single text, as TEI answers)."""


# -- image tasks: the body is the image itself, or JSON with it in base64 when parameters are given

class ImageClassificationParameters(_Refuses):
    NEUTRAL: ClassVar[dict[str, Any]] = {"function_to_apply": "softmax"}

    top_k: int | None = Field(None, ge=1)
    function_to_apply: str | None = None


class HFImageClassificationRequest(OpenAIRequestBody):
    inputs: str = Field(description="the image, base64")
    parameters: ImageClassificationParameters = Field(default_factory=ImageClassificationParameters)


class DetectionParameters(OpenAIRequestBody):
    threshold: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)


class HFObjectDetectionRequest(OpenAIRequestBody):
    inputs: str = Field(description="the image, base64")
    parameters: DetectionParameters = Field(default_factory=DetectionParameters)


class HFBox(ResponseBody):
    xmin: int
    ymin: int
    xmax: int
    ymax: int


class HFDetected(ResponseBody):
    label: str
    score: float
    box: HFBox


class HFDetections(RootModel[list[HFDetected]]):
    """Object detection (and face detection, labelled `face`): boxes in the image's pixels."""


# -- speech

class HFSpeechChunk(ResponseBody):
    text: str
    timestamp: tuple[float, float]


class HFSpeechOutput(ResponseBody):
    """Automatic speech recognition: the text, and timed chunks."""

    text: str
    chunks: list[HFSpeechChunk]


HF_REQUESTS = (TGIRequest, HFTextClassificationRequest, HFZeroShotRequest, HFTokenClassificationRequest,
               HFFeatureExtractionRequest, HFImageClassificationRequest, HFObjectDetectionRequest)
HF_ANSWERS = (TGIGeneratedList, HFTextClassifications, HFLabelScores, HFEntities, HFVectors, HFDetections,
              HFSpeechOutput)
