"""The config file: a TOML file of limits (a [server] table) and models ([[models]] tables).

``ServerConfig`` is the part of the settings the runtime and the API read; ``maas_server.settings``
builds the one settings object from it, with flags and ``MAAS_*`` variables above the file.
Nothing here touches torch: the config is read before any model loads.
"""

from __future__ import annotations

import os
import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

Task = Literal["text-generation", "embeddings", "text-classification", "image-classification", "token-classification",
               "object-detection", "face-detection", "face-embedding", "speech-recognition", "pii", "ocr",
               "semantic-role-labeling", "scene-classification"]
TASKS: tuple[str, ...] = Task.__args__  # type: ignore[attr-defined]


class ConfigError(ValueError):
    """The configuration is invalid; the message says which setting and what to change."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Preprocess(_Strict):
    """Image preprocessing overrides (else taken from the model's own config)."""

    size: int | None = Field(None, gt=0)
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None


Backend = Literal["local", "ray"]


class Autoscaling(_Strict):
    """Ray Serve autoscaling for one model: between `min` and `max` replicas, aiming at
    `target_ongoing_requests` requests in each replica (queued in its runner or running)."""

    min: int = Field(1, ge=1, description="replicas kept running (at least 1: /ready needs a running replica)")
    max: int = Field(ge=1)
    target_ongoing_requests: float = Field(16.0, gt=0)

    @model_validator(mode="after")
    def _min_below_max(self) -> Autoscaling:
        if self.min > self.max:
            raise ValueError(f"autoscaling min ({self.min}) is above max ({self.max})")
        return self


ONNX_TASKS = ("embeddings", "text-classification", "image-classification")  # tasks `runtime = "onnx"` serves
RAY_ONLY = ("replicas", "autoscaling", "num_cpus", "num_gpus")  # model fields that apply to backend = "ray" alone


class ModelConfig(_Strict):
    """One served model: a name clients use, the task it is bound to, and where it comes from."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
    aliases: tuple[Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")], ...] = Field(
        (), description="other names clients may send for this model (OpenAI's `whisper-1` in code copied from "
                        "its docs); answers name the model by `name`")
    task: Task
    source: str = Field(min_length=1, description="HF id, local folder/file, or pkg://PACKAGE/PATH")
    architecture: str | None = Field(
        None, description="e.g. timm:tf_efficientnet_lite0 when `source` is a bare weights file"
    )
    device: str | None = Field(None, description="cpu, cuda, cuda:1 ... (default: the server's `device`)")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="auto: float16 on CUDA, float32 on CPU. bfloat16 is the lower-cost CPU mode for "
                            "generation: 1.5-1.7x the tokens/s on CPUs with native bf16 (avx512_bf16, AMX), "
                            "with greedy text that can part from float32's after some tokens "
                            "(docs/performance.md)")
    trace: bool | None = Field(
        None, description="run the forward pass of embedding, text- and image-classification models as a TorchScript "
                          "graph, kept only if it matches eager on sample inputs at load: one call takes the GIL "
                          "back once instead of at every op, which request threads slow down "
                          "(docs/performance.md). Default: on for CPU, off elsewhere")
    runtime: Literal["torch", "onnx", "onnx-int8"] = Field(
        "torch", description="embeddings, text- and image-classification on CPU: onnx runs the forward pass on "
                             "ONNX Runtime in float32, onnx-int8 with int8 weights (dynamic quantization); the "
                             "graph is exported at load (cached in cache_dir) and kept only if it matches torch "
                             "float32 on a fixed sample (models/onnx_runtime.py), else torch serves and the log "
                             "says why. GET /v1/models reports the runtime in use. Explanations stay on torch")
    max_batch_size: int = Field(16, ge=1, le=1024)
    max_wait_ms: float | None = Field(
        None, ge=0, le=1000,
        description="how long a batch waits for more inputs (default: 0 on CPU, where batches fill while the "
                    "model is busy; 2 ms on CUDA, where a step is short)",
    )
    max_prefill_tokens: int | None = Field(
        None, ge=1, description="generation: prompt tokens that may join the running batch in one step "
                                "(default: 128 on CPU, 8192 on CUDA); more wait for the next step, and a longer "
                                "prompt is prefilled this many tokens a step while the others decode"
    )
    max_queue: int = Field(1024, ge=1, description="queued inputs (a list input counts each item)")
    explain_max_queue: int = Field(
        8, ge=1, description="queued explanations (explain: true); they run on a runner of their own, a "
                             "backward pass each, so they never delay plain requests in the queue")
    queue_timeout_s: float | None = Field(
        60.0, gt=0, description="an input that waited this long in the queue is dropped with 503 (none: no limit)"
    )
    max_context: int | None = Field(
        None, gt=0, description="token limit (default: the model's); a spaCy pipeline's limit counts characters")
    default_max_tokens: int = Field(256, ge=1, description="chat max_tokens when the request has none")
    zero_shot_scale: float = Field(
        20.0, gt=0, description="embeddings: cosine similarities are multiplied by this before softmax"
    )
    preprocess: Preprocess = Preprocess()
    head: str | None = Field(
        None, description="text-classification: a trained linear head (safetensors: weight, bias, label names) "
                          "over the pooled, normalised embeddings of `source`, an embeddings model "
                          "(models/sentiment_head.py); a path or pkg://PACKAGE/PATH")

    backend: Backend = Field(
        "local", description="local: in every server process; ray: replicas in a Ray Serve deployment "
                             "(docs/scaling.md)")
    replicas: int | None = Field(None, ge=1, description="ray: a fixed number of replicas (default 1)")
    autoscaling: Autoscaling | None = Field(None, description="ray: replicas between min and max, by load")
    num_cpus: float | None = Field(
        None, gt=0, description="ray: CPUs each replica reserves (default 1); its torch uses as many threads")
    num_gpus: float | None = Field(None, ge=0, description="ray: GPUs each replica reserves (default 0)")

    @model_validator(mode="after")
    def _ray_fields_only_for_ray(self) -> ModelConfig:
        given = [name for name in RAY_ONLY if getattr(self, name) is not None]
        if given and self.backend != "ray":
            raise ValueError(f"model {self.name!r}: {', '.join(given)} apply to backend = \"ray\" only; "
                             f"add backend = \"ray\" or remove them")
        if self.replicas is not None and self.autoscaling is not None:
            raise ValueError(f"model {self.name!r}: give replicas (a fixed number) or autoscaling, not both")
        return self

    def prefill_budget(self, device: str) -> int:
        """Generation: prompt tokens that may join the running batch in one step (`max_prefill_tokens`).

        A prefill stalls every running stream for its duration. On CPU a few prompts' worth per step
        keeps time to first token low for those who arrive together (docs/performance.md); a longer
        prompt is prefilled this many tokens a step while the others decode.
        """
        if self.max_prefill_tokens is not None:
            return self.max_prefill_tokens
        return 8192 if device.startswith("cuda") else 128

    @model_validator(mode="after")
    def _onnx_only_for_encoders(self) -> ModelConfig:
        if self.runtime != "torch" and self.task not in ONNX_TASKS:
            raise ValueError(f"model {self.name!r}: runtime = {self.runtime!r} applies to tasks "
                             f"{', '.join(ONNX_TASKS)} only, not {self.task}; remove it")
        return self

    @model_validator(mode="after")
    def _head_only_for_text_classification(self) -> ModelConfig:
        if self.head is not None and self.task != "text-classification":
            raise ValueError(f"model {self.name!r}: `head` applies to task text-classification only, not {self.task}")
        return self


class ServerConfig(_Strict):
    """Limits and the list of models. Every limit is enforced with a 4xx, never a 500."""

    max_body_bytes: int = Field(20_000_000, gt=0)
    max_inputs: int = Field(256, gt=0)
    max_explain_inputs: int = Field(4, gt=0, description="inputs per call with explain: true (a backward pass each)")
    max_tokens: int = Field(2048, gt=0)
    max_n: int = Field(8, gt=0)
    memory_budget_mb: int | None = Field(
        None, gt=0, description="working memory (decoded images and audio, explanations) the requests in flight "
                                "may hold in one worker; past it, 503 at once. Default: a quarter of the "
                                "machine's physical memory")
    max_request_tokens: int = Field(
        32_768, gt=0, description="generation: prompts x n x max_tokens one call may ask for (its share of the "
                                  "model's decoding; a model's default_max_tokens stands in for none); past it, 400")
    max_request_timeout_s: float = Field(
        300.0, ge=0.1, le=3600, description="the longest X-Request-Timeout a caller may ask for: how long a "
                                            "request may hold its places in a model's queue")
    max_schema_depth: int = Field(
        32, ge=1, le=200, description="structured output: levels of nesting of a JSON schema, counted through "
                                      "$ref (the grammar compiler recurses once per level: ~1,000 overflowed it)")
    max_schema_properties: int = Field(1000, gt=0, description="structured output: properties in one schema")
    max_schema_enum: int = Field(1000, gt=0, description="structured output: enum values in one schema")
    max_schema_pattern: int = Field(1000, gt=0, description="structured output: characters in one pattern")
    max_image_bytes: int = Field(10_000_000, gt=0)
    max_image_pixels: int = Field(40_000_000, gt=0)
    max_concurrent_requests: int = Field(
        1000, ge=1, le=10_000,  # `serve` gives the worker this many threads (+64): ~19 KiB RSS each when idle
        description="/v1 requests (open streams included) one worker holds at once; past it, 503 at once",
    )
    max_request_pixels: int = Field(
        250_000_000, gt=0, description="width*height summed over one request's images, read before decoding "
                                       "(bounds the decoding work of one call: ~256 images of 1 Mpx)"
    )
    image_max_side: int = Field(
        1024, ge=32, description="images are shrunk at once to at most this many pixels on their longest side: "
                                 "above the inputs of common image models (224-512), far below a photo's"
    )
    max_audio_bytes: int = Field(20_000_000, gt=0, description="one audio file, encoded")
    max_audio_seconds: float = Field(
        1800.0, gt=0, le=86_400, description="one audio file, decoded: longer audio is refused with 413, and "
                                             "decoding stops there (64 kB of samples per second)")
    max_entity_characters: int = Field(
        200_000, gt=0, description="named entities: characters in all the texts of one call (spaCy's time and "
                                   "memory follow them: ~20 ms and 600 kB per 1,000); past it, 400")
    max_audio_samples: int = Field(
        500_000_000, gt=0, description="one audio file: channels x sample rate x seconds to decode (FFmpeg's work: "
                                       "30 minutes of stereo at 48 kHz is 173 M); past it, 413")
    cache_dir: Path = Field(default_factory=lambda: Path.home() / ".cache" / "maas",
                            description="converted models (GGUF -> safetensors) are kept here")
    # Before `models`: their validator reads it.
    device: str = Field("auto", min_length=1, description="device of every model whose table names none: auto "
                                                         "(cuda when torch sees one, else cpu), cpu, cuda, cuda:1 ...")
    models: tuple[ModelConfig, ...] = Field(min_length=1)
    ray_address: str | None = Field(
        None, min_length=1, description="the Ray cluster of the models with backend = \"ray\": auto (the "
                                        "cluster this machine belongs to), ray://HOST:PORT, HOST:PORT, or local "
                                        "(start one on this machine)")
    ray_app: str = Field("maas", min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                         description="the Ray Serve application the ray-backed models are deployed as")
    ray_redeploy: bool = Field(False, description="when the Ray application runs another config, roll this one "
                                                  "out (else serve refuses to start)")

    def ray_models(self) -> tuple[ModelConfig, ...]:
        return tuple(m for m in self.models if m.backend == "ray")

    @field_validator("models")
    @classmethod
    def _unique_names(cls, models: tuple[ModelConfig, ...]) -> tuple[ModelConfig, ...]:
        names = [name for m in models for name in (m.name, *m.aliases)]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"model names and aliases must be unique; repeated: {', '.join(duplicates)}")
        return models

    @field_validator("models")
    @classmethod
    def _server_device_by_default(cls, models: tuple[ModelConfig, ...],
                                  info: ValidationInfo) -> tuple[ModelConfig, ...]:
        # Filled in here, so the runtime reads one place (the model's table) and no variable.
        device = info.data.get("device", "auto")
        return tuple(m if m.device else m.model_copy(update={"device": device}) for m in models)

    @model_validator(mode="after")
    def _queues_fit_one_call(self) -> ServerConfig:
        small = [m.name for m in self.models if m.max_queue < self.max_inputs]
        if small:
            raise ValueError(f"max_queue of {', '.join(small)} is below max_inputs ({self.max_inputs}): "
                             f"a full-size call could never be admitted; raise max_queue or lower max_inputs")
        return self

    @model_validator(mode="after")
    def _explain_queues_fit_one_call(self) -> ServerConfig:
        small = [m.name for m in self.models if m.explain_max_queue < self.max_explain_inputs]
        if small:
            raise ValueError(f"explain_max_queue of {', '.join(small)} is below max_explain_inputs "
                             f"({self.max_explain_inputs}): a full-size call could never be admitted")
        return self

    @model_validator(mode="after")
    def _ray_models_name_a_cluster(self) -> ServerConfig:
        names = [m.name for m in self.ray_models()]
        if names and self.ray_address is None:
            raise ValueError(f"{', '.join(names)} run on Ray (backend = \"ray\") but no cluster is named: pass "
                             f"--ray-address auto, ray://HOST:PORT or local (MAAS_RAY_ADDRESS, or ray_address in "
                             f"[server])")
        return self

    @model_validator(mode="after")
    def _request_fits_one_image(self) -> ServerConfig:
        if self.max_request_pixels < self.max_image_pixels:
            raise ValueError(f"max_request_pixels ({self.max_request_pixels}) is below max_image_pixels "
                             f"({self.max_image_pixels}): an image within its own limit could be refused; "
                             f"raise max_request_pixels or lower max_image_pixels")
        return self

    def model(self, name: str) -> ModelConfig | None:
        return next((m for m in self.models if m.name == name), None)


def default_config_text() -> str:
    return resources.files("maas_server").joinpath("default_config.toml").read_text()


def read_config_file(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Read a TOML config (the packaged default when `path` is None) into its settings, by name."""
    try:
        text = default_config_text() if path is None else Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path or 'default config'} is not valid TOML: {exc}") from exc
    return file_settings(raw)


def file_settings(raw: dict[str, Any]) -> dict[str, Any]:
    """The settings in a dict shaped like the TOML file: its [server] table and its [[models]]."""
    unknown = set(raw) - {"server", "models"}
    if unknown:
        raise ConfigError(f"unknown top-level config section(s): {', '.join(sorted(unknown))}")
    return {**raw.get("server", {}), "models": raw.get("models", [])}
