"""Causal language models (GPT-2, Llama, SmolLM2...): prompt preparation and the decode loop.

The decode loop is our own rather than ``model.generate`` because it needs, per step: per-request
sampling with its own seeded generator, token log-probabilities, stop strings that are cut from
the output, streamed text as events, and requests that leave when cancelled. It keeps the KV cache
itself.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache
from transformers.cache_utils import DynamicLayer

from ..ops.steptimes import timed
from .contract import InvalidInput, ItemFailed, Method, ModelDescription, StepMethod, StepOutput, failed_alone
from .generation_io import GENERATE, Choice, GenerationRequest, GenerationResult, TextDelta, TokenLogprob
from .sources import cached_gguf_conversion, is_gguf, resolve_source
from .structured import Grammar, JsonGrammars
from .tool_prompt import template_takes_tools, with_tools_in_text

log = logging.getLogger("maas.models")

# The character bound assumes at least this many characters a token fit, whatever the vocabulary:
# WordPiece's [UNK] stands for a whole unknown word, which has no length in the vocabulary.
MIN_TOKEN_CHARACTERS = 100


@dataclass
class PreparedGeneration:
    request: GenerationRequest
    prompt_ids: list[int]
    max_tokens: int
    grammar: Grammar | None = None  # the compiled JSON schema its text must follow (structured output)


class TextGenerationModel:
    """Serves ``/v1/completions`` and ``/v1/chat/completions``."""

    task = "text-generation"

    def __init__(self, model: Any, tokenizer: Any, *, device: str, max_context: int, default_max_tokens: int,
                 prefill_chunk: int | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.dtype = str(model.dtype).removeprefix("torch.")
        self.max_context = max_context
        self.default_max_tokens = default_max_tokens
        # A join of more prompt tokens than this (times their rows) enters a batch that is decoding a
        # chunk a step, so the running streams wait for one chunk, not the whole prompt. None: at once.
        self.prefill_chunk = prefill_chunk
        self.eos_ids = _eos_ids(model, tokenizer)
        # Any id will do for padding: padded positions are masked out.
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids, default=0)
        # transformers 5.x renamed `past_key_values` to `cache`; accept both generations.
        forward_params = inspect.signature(model.forward).parameters
        self.cache_arg = "cache" if "cache" in forward_params else "past_key_values"
        # A prefill needs the scores of the prompt's last position only; computing the LM head over
        # every position cost 10-25% of a CPU prefill (docs/performance.md). Older models lack the option.
        self.last_logits_only = {"logits_to_keep": 1} if "logits_to_keep" in forward_params else {}

    @classmethod
    def load(cls, config: Any, device: str, dtype: torch.dtype, cache_dir: Path) -> TextGenerationModel:
        path = resolve_source(config.source)
        if is_gguf(path):
            path = str(cached_gguf_conversion(path, cache_dir, lambda out: _convert_gguf(path, out)))
        tokenizer = AutoTokenizer.from_pretrained(path)
        # transformers declares `to` with @wraps(nn.Module.to), so mypy reads it as unbound (self first).
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()  # type: ignore[arg-type]
        max_context = config.max_context or _context_length(model, tokenizer)
        return cls(model, tokenizer, device=device, max_context=max_context,
                   default_max_tokens=config.default_max_tokens, prefill_chunk=config.prefill_budget(device))

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def describe(self) -> ModelDescription:
        return ModelDescription(device=self.device, dtype=self.dtype, context_length=self.max_context)

    def batch_methods(self) -> dict[Method[Any, Any], StepMethod]:
        return {GENERATE: StepMethod(self.prepare, lambda: DecodeBatch(self), rows=lambda item: item.request.n,
                                       max_batch_size=None if self.can_merge_caches else 1,
                                       prefill_tokens=lambda item: len(item.prompt_ids) * item.request.n,
                                       row_steps=lambda item: item.max_tokens * item.request.n,
                                       # Tokenizing and compiling on the request's thread: the fast
                                       # tokenizer is shared safely as nobody changes its truncation
                                       # or padding settings (a change would take a write borrow).
                                       prepare_on_caller=True)}

    @property
    def can_merge_caches(self) -> bool:
        # Joining a running batch pads and concatenates KV caches; a sliding-window cache drops old
        # positions on its own, so those models decode one request at a time (correct, slower).
        config = self.model.config
        layer_types = getattr(config, "layer_types", None)
        if layer_types:
            return "sliding_attention" not in layer_types
        return not (getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True))

    def warmup(self) -> None:
        self.run([self.prepare(GenerationRequest(prompt="Hello", max_tokens=2, temperature=0))])

    # -- preparation: tokenize and check lengths (may raise InvalidInput for this request only)

    def prepare(self, request: GenerationRequest) -> PreparedGeneration:
        ids = self._prompt_ids(request)
        if not ids:
            raise InvalidInput("the prompt is empty", param="prompt", code="empty_prompt")
        room = self.max_context - len(ids)
        max_tokens = request.max_tokens if request.max_tokens is not None else min(self.default_max_tokens, room)
        if max_tokens < 1 or len(ids) + max_tokens > self.max_context:
            raise InvalidInput(
                f"this model's maximum context length is {self.max_context} tokens, but the prompt has "
                f"{len(ids)} tokens and max_tokens asks for {max_tokens} more; shorten the prompt or "
                f"lower max_tokens",
                param="max_tokens" if room > 0 else "prompt",
                code="context_length_exceeded",
            )
        grammar = None
        if request.json_schema is not None:
            grammar = self.grammars.compile(request.json_schema, request.json_schema_field)
        return PreparedGeneration(request, ids, max_tokens, grammar)

    @functools.cached_property
    def grammars(self) -> JsonGrammars:
        """The tokenizer as the grammar engine sees it, built on the first structured request."""
        return JsonGrammars(self.tokenizer)

    @functools.cached_property
    def longest_token(self) -> int:
        """Characters in the vocabulary's longest token: a prompt longer than this times the context
        cannot fit whatever it says, and is refused without tokenizing it."""
        vocabulary = self.tokenizer.convert_ids_to_tokens(list(range(len(self.tokenizer))))
        return max(MIN_TOKEN_CHARACTERS, *(len(token) for token in vocabulary if token))

    def _refuse_if_cannot_fit(self, request: GenerationRequest) -> None:
        """A cheap bound before tokenizing: a 15 MB message is refused in milliseconds, not seconds."""
        limit = self.max_context * self.longest_token
        if request.messages is None:
            characters, parts = len(request.prompt or ""), 1
        else:
            characters = sum(_characters(message) for message in request.messages)
            characters += len(json.dumps(request.tools)) if request.tools else 0
            parts = len(request.messages)
        if characters > limit or parts > self.max_context:  # every message costs at least one token
            raise InvalidInput(
                f"this model's maximum context length is {self.max_context} tokens, and the prompt cannot fit: "
                f"{characters} characters in {parts} message(s), where at most {limit} characters "
                f"({self.longest_token} per token at the most) could",
                param="messages" if request.messages is not None else "prompt", code="context_length_exceeded")

    def _prompt_ids(self, request: GenerationRequest) -> list[int]:
        self._refuse_if_cannot_fit(request)
        if request.messages is None:
            return list(self.tokenizer(request.prompt or "")["input_ids"])
        if not self.has_chat_template:
            raise InvalidInput("this model has no chat template; use /v1/completions", param="model",
                               code="chat_not_supported")
        if template_takes_tools(self.tokenizer.chat_template):
            rendered = self.tokenizer.apply_chat_template(request.messages, tools=request.tools,
                                                          add_generation_prompt=True, return_dict=True)
        else:
            messages = with_tools_in_text(request.messages, request.tools, request.tools_required)
            rendered = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)
        return list(rendered["input_ids"])

    # -- decoding

    def run(self, items: list[PreparedGeneration]) -> list[GenerationResult]:
        """Decode `items` together as one static batch (in-process use, warm-up, tests)."""
        batch = DecodeBatch(self)
        results: dict[int, GenerationResult | ItemFailed] = {}
        output = batch.add(list(enumerate(items)))
        while True:
            results.update(output.finished)
            if not batch:
                return [_raise_failed(results[i]) for i in range(len(items))]
            output = batch.step()

    def token_logprob(self, logprobs: torch.Tensor, token_id: int, top_k: int | None) -> TokenLogprob | None:
        if top_k is None:
            return None
        top: tuple[tuple[str, float], ...] = ()
        if top_k > 0:
            values, ids = torch.topk(logprobs, top_k)
            top = tuple((self.tokenizer.decode([int(i)]), float(v)) for v, i in zip(values, ids))
        return TokenLogprob(self.tokenizer.decode([token_id]), float(logprobs[token_id]), top, id=token_id)


@dataclass(eq=False)
class _Sequence:
    """One request in a decode batch: its key (the runner's handle), its rows and its generator."""

    key: Any
    item: PreparedGeneration
    generator: torch.Generator | None
    rows: list[_Row] = field(default_factory=list)
    error: ItemFailed | None = None  # set when this request failed alone; its rows then leave

    @property
    def request(self) -> GenerationRequest:
        return self.item.request

    def result(self) -> GenerationResult:
        return GenerationResult(len(self.item.prompt_ids), [row.decoder.choice for row in self.rows])


@dataclass(eq=False)
class _Row:
    """One sampled sequence (a request with n=3 has three rows)."""

    sequence: _Sequence
    index: int
    decoder: _Decoder
    matcher: Any = None  # its grammar's state, when the request asked for structured output


@dataclass(eq=False)
class _Prefill:
    """Rows whose prompt goes through the model a chunk of columns per step (left-padded, as a join)."""

    rows: list[_Row]
    ids: torch.Tensor  # [rows, prompt width]
    mask: torch.Tensor
    positions: torch.Tensor
    cache: DynamicCache
    done: int = 0  # columns through the model so far

    @property
    def width(self) -> int:
        return int(self.ids.shape[1])

    @property
    def tokens(self) -> int:
        """Prompt tokens, padding left out (what the runner's prefill budget counts)."""
        return int(self.mask.sum())


class DecodeBatch:
    """Sequences decoded together, one token per step for all of them (continuous batching).

    ``add`` prefills new requests as one left-padded batch and merges their KV cache into the
    running one; ``step`` feeds every row its last token. A join of more prompt tokens than the
    model's ``prefill_chunk`` while rows are decoding is prefilled a chunk per step instead, before
    each decode step, and merges when its last chunk is done. A row leaves as soon as it hits a stop
    condition or its ``max_tokens``, and ``cancel`` takes requests out at once; either frees their
    slots. Streamed requests get their new final text back as TextDelta events.
    Each request keeps its own sampling parameters and seeded generator, so its output does not
    depend on what else is in the batch. Invariant: ``mask`` has one column per cached position.
    """

    def __init__(self, model: TextGenerationModel) -> None:
        self.model = model
        self.rows: list[_Row] = []
        self.cache: DynamicCache | None = None
        self.mask = torch.zeros(0, 0, dtype=torch.long, device=model.device)  # [rows, cached positions]
        self.next_ids = torch.zeros(0, dtype=torch.long, device=model.device)  # each row's last sampled token
        self.positions = torch.zeros(0, dtype=torch.long, device=model.device)  # that token's position id
        self.pending: list[_Prefill] = []  # long prompts joining a chunk per step

    def __len__(self) -> int:
        return len(self.rows) + sum(len(p.rows) for p in self.pending)

    @torch.inference_mode()
    def add(self, items: list[tuple[Any, PreparedGeneration]]) -> StepOutput:
        """Prefill `items` (key, prepared) and sample their first token; returns those already done.

        While other rows decode, a join longer than the model's ``prefill_chunk`` only queues here:
        ``step`` prefills it a chunk at a time.
        """
        prefill = self._new_prefill(items)
        chunk = self.model.prefill_chunk
        if self.rows and chunk is not None and prefill.tokens > chunk:
            self.pending.append(prefill)
            return StepOutput()
        return self._prefill(prefill, prefill.width)

    def _new_prefill(self, items: list[tuple[Any, PreparedGeneration]]) -> _Prefill:
        device = self.model.device
        rows = []
        for key, item in items:
            sequence = _Sequence(key, item, _seeded_generator(item.request.seed, device))
            sequence.rows = [_Row(sequence, i, _Decoder(self.model.tokenizer, item.request.stop),
                                  item.grammar.matcher() if item.grammar else None)
                             for i in range(item.request.n)]
            rows += sequence.rows
        ids, mask = _left_padded([row.sequence.item.prompt_ids for row in rows], self.model.pad_id, device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        return _Prefill(rows, ids, mask, positions, GrowingCache())

    def _prefill(self, prefill: _Prefill, end: int) -> StepOutput:
        """Columns up to `end` through the model; at the last one, sample the first tokens and merge."""
        with timed("model.prefill"):
            out = self.model.model(input_ids=prefill.ids[:, prefill.done:end], attention_mask=prefill.mask[:, :end],
                                   position_ids=prefill.positions[:, prefill.done:end], use_cache=True,
                                   **{self.model.cache_arg: prefill.cache}, **self.model.last_logits_only)
        prefill.done = end
        if end < prefill.width:
            return StepOutput()
        events: list[tuple[Any, TextDelta]] = []
        next_ids = self._choose(prefill.rows, out.logits[:, -1, :].float(), events)
        with timed("model.merge"):
            self._merge(prefill.rows, prefill.cache, prefill.mask, next_ids, prefill.positions[:, -1] + 1)
        return StepOutput(events, self._retire())

    def _advance_pending(self) -> StepOutput:
        """The oldest long prompt's next chunk. It fails alone: the rows already decoding go on."""
        prefill = self.pending[0]
        columns = max(1, (self.model.prefill_chunk or prefill.width) // len(prefill.rows))
        end = min(prefill.width, prefill.done + columns) if self.rows else prefill.width  # no one to stall: finish
        try:
            output = self._prefill(prefill, end)
        except Exception as exc:
            log.exception("a chunked prefill failed; the running rows go on")
            self.pending.pop(0)
            failure = failed_alone(exc)
            return StepOutput([], [(s.key, failure) for s in dict.fromkeys(r.sequence for r in prefill.rows)])
        if prefill.done == prefill.width:
            self.pending.pop(0)
        return output

    @torch.inference_mode()
    def step(self) -> StepOutput:
        """One decode step for every row (after a chunk of a pending long prompt, if any)."""
        joined = self._advance_pending() if self.pending else StepOutput()
        if not self.rows:
            return joined
        decoded = self._decode_step()
        return StepOutput(joined.events + decoded.events, joined.finished + decoded.finished)

    def _decode_step(self) -> StepOutput:
        """The streamed text and the requests that finished."""
        with timed("model.mask"):
            mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=1)
        with timed("model.forward"):  # the KV cache grows inside: DynamicCache cats each layer's new position
            out = self.model.model(input_ids=self.next_ids[:, None], attention_mask=mask,
                                   position_ids=self.positions[:, None], use_cache=True,
                                   **{self.model.cache_arg: self.cache})
        self.mask, self.positions = mask, self.positions + 1
        events: list[tuple[Any, TextDelta]] = []
        self.next_ids = self._choose(self.rows, out.logits[:, -1, :].float(), events)
        return StepOutput(events, self._retire())

    def cancel(self, keys: list[Any]) -> StepOutput:
        """The requests of `keys` leave now (finish reason "length"), with the text they have so far."""
        leaving = set(keys)
        events: list[tuple[Any, TextDelta]] = []
        for row in self.rows:
            if row.sequence.key in leaving:
                row.decoder.finish_length()
                _emit(row, events)
        output = StepOutput(events, self._retire())
        for prefill in [p for p in self.pending if any(r.sequence.key in leaving for r in p.rows)]:
            self.pending.remove(prefill)  # nothing generated yet: each leaves with empty choices
            for row in prefill.rows:
                row.decoder.finish_length()
            output.finished += [(s.key, s.result()) for s in dict.fromkeys(r.sequence for r in prefill.rows)]
        return output

    def _choose(self, rows: list[_Row], logits: torch.Tensor, events: list[tuple[Any, TextDelta]]) -> torch.Tensor:
        """Sample each request's rows with its own parameters, then hand the tokens to the decoders.

        A request whose scores are not finite, or whose sampling fails, fails alone: its rows are
        marked finished with its error and leave at ``_retire``; the other rows sample as usual.
        """
        with timed("model.sample"):
            chosen = self._sample_rows(rows, logits)
        with timed("model.detokenize"):
            self._decode_rows(rows, logits, chosen, events)
        return chosen

    def _sample_rows(self, rows: list[_Row], logits: torch.Tensor) -> torch.Tensor:
        # One reduction for the whole batch: NaN and +inf propagate through max, and a row of only
        # -inf has no token to choose.
        finite = torch.isfinite(logits.amax(dim=-1)).tolist()
        self._constrain(rows, logits)
        # Every greedy row's token in one call for the whole batch (the common case, and a call per
        # request cost more than the argmax); sampled and failing rows overwrite or drop theirs below.
        chosen = logits.argmax(dim=-1)
        for sequence, indices in _group_rows(rows):
            needs_own = sequence.request.temperature > 0 or not all(finite[i] for i in indices)
            if sequence.error is None and needs_own:
                self._sample_sequence(sequence, indices, logits, finite, chosen)
        return chosen

    def _decode_rows(self, rows: list[_Row], logits: torch.Tensor, chosen: torch.Tensor,
                     events: list[tuple[Any, TextDelta]]) -> None:
        wants_logprobs = any(row.sequence.request.logprobs is not None for row in rows)
        logprobs = torch.log_softmax(logits, dim=-1) if wants_logprobs else None
        for position, (row, token_id) in enumerate(zip(rows, chosen.tolist())):
            if row.sequence.error is not None:
                row.decoder.finished = True
                continue
            req = row.sequence.request
            info = (self.model.token_logprob(logprobs[position], token_id, req.logprobs)
                    if logprobs is not None else None)
            if row.matcher is not None:
                row.matcher.consume_token(token_id)
            row.decoder.add(token_id, info, is_eos=token_id in self.model.eos_ids)
            if row.decoder.choice.completion_tokens >= row.sequence.item.max_tokens:
                row.decoder.finish_length()
            _emit(row, events)

    def _constrain(self, rows: list[_Row], logits: torch.Tensor) -> None:
        """Mask, in place, the tokens each structured row's grammar forbids; other rows are not touched."""
        constrained = [i for i, row in enumerate(rows) if row.matcher is not None and row.sequence.error is None]
        if constrained:
            self.model.grammars.mask(logits, constrained, [rows[i].matcher for i in constrained])

    def _sample_sequence(self, sequence: _Sequence, indices: list[int], logits: torch.Tensor, finite: list[bool],
                         chosen: torch.Tensor) -> None:
        if not all(finite[i] for i in indices):
            sequence.error = ItemFailed("the model produced non-finite scores for this request; "
                                        "retrying the same request will fail the same way")
            return
        req = sequence.request
        try:
            chosen[indices] = _sample(logits[indices], req.temperature, req.top_p, sequence.generator)
        except Exception as exc:  # this request's failure, not its neighbours'
            log.exception("sampling failed for one request; the rest of the batch goes on")
            sequence.error = ItemFailed(f"sampling failed for this request ({exc})")

    def _retire(self) -> list[tuple[Any, GenerationResult | ItemFailed]]:
        """Drop finished and failed rows; return the requests that are complete.

        A request that failed is returned with its error in place of a result.
        """
        keep = [i for i, row in enumerate(self.rows) if not row.decoder.finished]
        done = dict.fromkeys(row.sequence for row in self.rows if row.decoder.finished)  # ordered set
        if len(keep) < len(self.rows):
            with timed("model.retire"):
                self._select(keep)
        live = {row.sequence for row in self.rows}
        return [(s.key, s.error or s.result()) for s in done if s not in live]

    def _select(self, keep: list[int]) -> None:
        self.rows = [self.rows[i] for i in keep]
        index = torch.tensor(keep, dtype=torch.long, device=self.mask.device)
        self.mask, self.next_ids, self.positions = self.mask[index], self.next_ids[index], self.positions[index]
        # Columns that are padding for every remaining row cost attention time for nothing: cut them.
        used = self.mask.any(dim=0).nonzero()
        start = int(used[0]) if len(used) else self.mask.shape[1]
        self.mask = self.mask[:, start:]
        assert self.cache is not None
        # transformers types `layers` as every cache layer kind (some without keys/values) and their
        # keys/values as Optional until first filled; a prefilled DynamicCache holds filled DynamicLayers.
        for layer in self.cache.layers:
            layer.keys = layer.keys[index, :, start:]  # type: ignore[union-attr,index]
            layer.values = layer.values[index, :, start:]  # type: ignore[union-attr,index]

    def _merge(self, rows: list[_Row], cache: DynamicCache, mask: torch.Tensor, next_ids: torch.Tensor,
               positions: torch.Tensor) -> None:
        """Append prefilled rows: pad the shorter side on the left so the cached positions line up."""
        if self.cache is None or not self.rows:
            self.cache, self.mask = cache, mask
            self.rows, self.next_ids, self.positions = rows, next_ids, positions
            return
        width = max(self.mask.shape[1], mask.shape[1])
        self.mask = torch.cat([_pad_left(self.mask, width, -1), _pad_left(mask, width, -1)])
        for old, new in zip(self.cache.layers, cache.layers):  # filled DynamicLayers, as in _select
            old.keys = torch.cat([_pad_left(old.keys, width, -2), _pad_left(new.keys, width, -2)])  # type: ignore[union-attr,arg-type]
            old.values = torch.cat([_pad_left(old.values, width, -2), _pad_left(new.values, width, -2)])  # type: ignore[union-attr,arg-type]
        self.rows = self.rows + rows
        self.next_ids = torch.cat([self.next_ids, next_ids])
        self.positions = torch.cat([self.positions, positions])


# transformers leaves DynamicLayer's __init__ and __init_subclass__ unannotated.
class _GrowingLayer(DynamicLayer):  # type: ignore[no-untyped-call]
    """A DynamicLayer that appends into spare room instead of concatenating the whole cache each step.

    DynamicLayer's ``torch.cat`` copies every cached position of every row at every step, for every
    layer. Here ``keys``/``values`` are views into buffers with room to spare, and a step writes only
    its new position. When the batch replaces them (rows joining or leaving assign fresh tensors),
    the next update moves them into a new buffer: amortized, as a list grows.
    """

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._key_room: torch.Tensor | None = None
        self._value_room: torch.Tensor | None = None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor,
               *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self.keys = self.values = None
        self.keys, self._key_room = _appended(self.keys, self._key_room, key_states)
        self.values, self._value_room = _appended(self.values, self._value_room, value_states)
        return self.keys, self.values


class GrowingCache(DynamicCache):
    """A DynamicCache of :class:`_GrowingLayer`: the same API, no whole-cache copy per step."""

    def __init__(self) -> None:
        super().__init__()
        self.layer_class_to_replicate = _GrowingLayer


def _appended(view: torch.Tensor | None, room: torch.Tensor | None,
              new: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`view` [rows, heads, positions, dim] with `new` appended on positions, and the buffer behind it."""
    length = view.shape[-2] if view is not None else 0
    end = length + new.shape[-2]
    fits = (view is not None and room is not None and view.data_ptr() == room.data_ptr()
            and view.shape[:2] == room.shape[:2] and end <= room.shape[-2])
    if not fits:
        rows, heads, _, dim = new.shape
        room = new.new_empty(rows, heads, end + max(16, end // 2), dim)  # spare: ~half again, as lists grow
        if view is not None and length:
            room[:, :, :length] = view
    assert room is not None
    room[:, :, length:end] = new
    return room[:, :, :end], room


def _raise_failed(result: GenerationResult | ItemFailed) -> GenerationResult:
    if isinstance(result, ItemFailed):
        raise result
    return result


def _emit(row: _Row, events: list[tuple[Any, TextDelta]]) -> None:
    """Streamed requests: the row's text that became final, as an event for its request."""
    if row.sequence.request.stream:
        text, tokens = row.decoder.take_final_text()
        if text or tokens:
            events.append((row.sequence.key, TextDelta(row.index, text, tuple(tokens))))


def _group_rows(rows: list[_Row]) -> list[tuple[_Sequence, list[int]]]:
    groups: dict[_Sequence, list[int]] = {}
    for position, row in enumerate(rows):
        groups.setdefault(row.sequence, []).append(position)
    return list(groups.items())


def _left_padded(prompts: list[list[int]], pad_id: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    return ids, mask


def _pad_left(tensor: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    missing = width - tensor.shape[dim]
    if missing == 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


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
        found = [(at, stop) for stop in self.stop if (at := self.choice.text.find(stop)) >= 0]
        if found:
            cut, self.choice.stop_sequence = min(found)
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


# Temperatures below this sample as if they were this: the scaled logits stay finite, and the choice
# is already greedy in practice. Without the floor, 1e-38 or less overflows softmax into NaN.
MIN_TEMPERATURE = 1e-4


def _sample(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Sample one token per row. No finite temperature or top_p can make the probabilities non-finite."""
    if temperature <= 0:
        return logits.argmax(dim=-1)
    # Relative to each row's best logit everything is <= 0, so dividing by a small temperature
    # gives 0 for the best token and at worst -inf for the others: softmax stays a distribution.
    relative = logits - logits.max(dim=-1, keepdim=True).values
    probs = torch.softmax(relative / max(temperature, MIN_TEMPERATURE), dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        # Keep the smallest prefix whose mass reaches top_p, and always the top token: a top_p that
        # rounds to 0 in float32 (5e-324) would otherwise mask every token.
        outside = sorted_probs.cumsum(dim=-1) - sorted_probs >= top_p
        outside[..., 0] = False
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
    model.hf_quantizer = None  # type: ignore[assignment]  # nn.Module types attributes as Tensor | Module
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def _characters(value: Any) -> int:
    """Characters in the strings of a message (its content, content parts, tool calls)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(_characters(v) for v in value.values())
    if isinstance(value, list):
        return sum(_characters(v) for v in value)
    return 0
