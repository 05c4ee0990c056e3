"""Causal language models (GPT-2, Llama, SmolLM2...): prompt preparation and the decode loop.

The decode loop is our own rather than ``model.generate`` because it needs, per step: per-request
sampling with its own seeded generator, token log-probabilities, stop strings that are cut from
the output, a callback for streaming, and a cancellation check. It keeps the KV cache itself.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache

from .base import BatchMethod, InvalidInput
from .sources import cached_gguf_conversion, is_gguf, resolve_source

log = logging.getLogger("maas.models")


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token with its log-probability and the most likely alternatives."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass
class GenerationRequest:
    """One prompt (text, or chat messages) and its own sampling parameters."""

    prompt: str | None = None
    messages: list[dict[str, str]] | None = None
    max_tokens: int | None = None  # None: default_max_tokens, clipped to the context
    temperature: float = 1.0
    top_p: float = 1.0
    n: int = 1
    stop: tuple[str, ...] = ()
    seed: int | None = None
    logprobs: int | None = None  # None: no log-probabilities; k: chosen token plus k alternatives
    # Streaming: called with (choice index, new text, the tokens behind it) as text becomes final.
    on_text: Callable[[int, str, list[TokenLogprob]], None] | None = None
    is_cancelled: Callable[[], bool] = lambda: False


@dataclass
class PreparedGeneration:
    request: GenerationRequest
    prompt_ids: list[int]
    max_tokens: int


@dataclass
class Choice:
    """The result for one sampled sequence."""

    text: str = ""
    finish_reason: str | None = None
    tokens: list[TokenLogprob] = field(default_factory=list)
    completion_tokens: int = 0


@dataclass
class GenerationResult:
    prompt_tokens: int
    choices: list[Choice]


class TextGenerationModel:
    """Serves ``/v1/completions`` and ``/v1/chat/completions``."""

    task = "text-generation"

    def __init__(self, model: Any, tokenizer: Any, *, device: str, max_context: int, default_max_tokens: int) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.dtype = str(model.dtype).removeprefix("torch.")
        self.max_context = max_context
        self.default_max_tokens = default_max_tokens
        self.eos_ids = _eos_ids(model, tokenizer)
        # transformers 5.x renamed `past_key_values` to `cache`; accept both generations.
        self.cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

    @classmethod
    def load(cls, config: Any, device: str, dtype: torch.dtype, cache_dir: Path) -> TextGenerationModel:
        path = resolve_source(config.source)
        if is_gguf(path):
            path = str(cached_gguf_conversion(path, cache_dir, lambda out: _convert_gguf(path, out)))
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()
        max_context = config.max_context or _context_length(model, tokenizer)
        return cls(model, tokenizer, device=device, max_context=max_context, default_max_tokens=config.default_max_tokens)

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def batch_methods(self) -> dict[str, BatchMethod]:
        # One request at a time for now: iteration-level batching belongs in the runtime.
        return {"generate": BatchMethod(self.prepare, self.run, max_batch_size=1)}

    def warmup(self) -> None:
        self.run([self.prepare(GenerationRequest(prompt="Hello", max_tokens=2, temperature=0))])

    # -- preparation: tokenize and check lengths (may raise InvalidInput for this request only)

    def prepare(self, request: GenerationRequest) -> PreparedGeneration:
        ids = self._prompt_ids(request)
        if not ids:
            raise InvalidInput("the prompt is empty", param="prompt", code="empty_prompt")
        room = self.max_context - len(ids)
        max_tokens = request.max_tokens if request.max_tokens is not None else min(self.default_max_tokens, room)
        if len(ids) + max_tokens > self.max_context:
            raise InvalidInput(
                f"this model's maximum context length is {self.max_context} tokens, but the prompt has "
                f"{len(ids)} tokens and max_tokens asks for {max_tokens} more; shorten the prompt or "
                f"lower max_tokens",
                param="max_tokens" if room > 0 else "prompt",
                code="context_length_exceeded",
            )
        return PreparedGeneration(request, ids, max_tokens)

    def _prompt_ids(self, request: GenerationRequest) -> list[int]:
        if request.messages is None:
            return list(self.tokenizer(request.prompt or "")["input_ids"])
        if not self.has_chat_template:
            raise InvalidInput("this model has no chat template; use /v1/completions", param="model", code="chat_not_supported")
        return list(self.tokenizer.apply_chat_template(request.messages, add_generation_prompt=True, return_dict=True)["input_ids"])

    # -- the decode loop

    def run(self, batch: list[PreparedGeneration]) -> list[GenerationResult]:
        return [self._generate(item) for item in batch]

    @torch.inference_mode()
    def _generate(self, item: PreparedGeneration) -> GenerationResult:
        req = item.request
        rows = [_Decoder(self.tokenizer, req.stop) for _ in range(req.n)]
        generator = _seeded_generator(req.seed, self.device)
        input_ids = torch.tensor([item.prompt_ids] * req.n, device=self.device)
        cache = DynamicCache()
        for _ in range(item.max_tokens):
            step = self.model(input_ids=input_ids, use_cache=True, **{self.cache_arg: cache})
            logits = step.logits[:, -1, :].float()
            next_ids = _sample(logits, req.temperature, req.top_p, generator)
            logprobs = torch.log_softmax(logits, dim=-1)
            for index, row in enumerate(rows):
                if row.finished:
                    continue
                token_id = int(next_ids[index])
                info = self._token_logprob(logprobs[index], token_id, req.logprobs)
                row.add(token_id, info, is_eos=token_id in self.eos_ids)
                self._emit(req, index, row)
            if all(row.finished for row in rows) or req.is_cancelled():
                break
            input_ids = next_ids.unsqueeze(-1)
        for index, row in enumerate(rows):
            row.finish_length()
            self._emit(req, index, row)
        return GenerationResult(len(item.prompt_ids), [row.choice for row in rows])

    def _emit(self, req: GenerationRequest, index: int, row: _Decoder) -> None:
        if req.on_text is not None:
            text, tokens = row.take_final_text()
            if text or tokens:
                req.on_text(index, text, tokens)

    def _token_logprob(self, logprobs: torch.Tensor, token_id: int, top_k: int | None) -> TokenLogprob | None:
        if top_k is None:
            return None
        top: tuple[tuple[str, float], ...] = ()
        if top_k > 0:
            values, ids = torch.topk(logprobs, top_k)
            top = tuple((self.tokenizer.decode([int(i)]), float(v)) for v, i in zip(values, ids))
        return TokenLogprob(self.tokenizer.decode([token_id]), float(logprobs[token_id]), top)


class _Decoder:
    """Detokenizes one sequence incrementally, cuts stop strings, and tracks what was streamed.

    Text is released only when it is final: not mid-way through a multi-byte character (the
    tokenizer shows those as U+FFFD) and not while it could still be the start of a stop string.
    """

    def __init__(self, tokenizer: Any, stop: tuple[str, ...]) -> None:
        self.tokenizer = tokenizer
        self.stop = stop
        self.holdback = max((len(s) for s in stop), default=1) - 1
        self.ids: list[int] = []
        self.choice = Choice()
        self.released = 0  # characters of choice.text already handed out
        self.released_tokens = 0
        self.finished = False

    def add(self, token_id: int, info: TokenLogprob | None, *, is_eos: bool) -> None:
        self.choice.completion_tokens += 1
        if is_eos:
            self.finished, self.choice.finish_reason = True, "stop"
            return
        self.ids.append(token_id)
        if info is not None:
            self.choice.tokens.append(info)
        self.choice.text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        cut = min((i for i in (self.choice.text.find(s) for s in self.stop) if i >= 0), default=-1)
        if cut >= 0:
            self.choice.text = self.choice.text[:cut]
            self.finished, self.choice.finish_reason = True, "stop"

    def finish_length(self) -> None:
        if not self.finished:
            self.finished, self.choice.finish_reason = True, "length"

    def take_final_text(self) -> tuple[str, list[TokenLogprob]]:
        text = self.choice.text
        end = len(text) if self.finished else len(text) - self.holdback
        if not self.finished and text.endswith("\ufffd"):
            end = min(end, len(text.rstrip("\ufffd")))
        if end <= self.released:
            return "", self._take_tokens() if self.finished else []
        new, self.released = text[self.released:end], end
        return new, self._take_tokens()

    def _take_tokens(self) -> list[TokenLogprob]:
        new = self.choice.tokens[self.released_tokens:]
        self.released_tokens = len(self.choice.tokens)
        return new


def _sample(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None) -> torch.Tensor:
    if temperature <= 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        # Keep the smallest prefix whose mass reaches top_p (always at least the top token).
        outside = sorted_probs.cumsum(dim=-1) - sorted_probs >= top_p
        sorted_probs = sorted_probs.masked_fill(outside, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _seeded_generator(seed: int | None, device: str) -> torch.Generator | None:
    if seed is None:
        return None
    return torch.Generator(device=device).manual_seed(seed)


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    for value in (getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif value:
            ids.update(int(v) for v in value)
    return frozenset(ids)


def _context_length(model: Any, tokenizer: Any) -> int:
    candidates = [getattr(model.config, name, None) for name in ("max_position_embeddings", "n_positions", "n_ctx")]
    limit = next((c for c in candidates if isinstance(c, int) and c > 0), None)
    tok_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_limit, int) and 0 < tok_limit < 10**9:
        limit = min(limit, tok_limit) if limit else tok_limit
    return limit or 2048


def _convert_gguf(gguf_path: str, out_dir: Path) -> None:
    """Dequantize a GGUF file with transformers and save config, tokenizer and safetensors."""
    folder, name = str(Path(gguf_path).parent), Path(gguf_path).name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    # The model is plain float32 once dequantized; drop the GGUF quantizer so it can be saved.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


