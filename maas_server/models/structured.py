"""Constrained decoding with llguidance: each row of a decode batch may follow its own JSON schema.

Why llguidance (benchmarks/grammar_engines.py, numbers in docs/performance.md): of the grammar
engines on PyPI it is the one that refuses the JSON-schema keywords it cannot enforce
(`Unimplemented keys: ["not"]`) instead of accepting the schema and letting invalid output
through, as xgrammar 0.2.8 did for allOf, if/then, not and minItems; its per-token cost (a token
mask of the vocabulary) is 20-40 us on this CPU, against a decode step of tens of milliseconds;
and it needs no torch of its own. A schema is compiled once per request, on the request's thread; each row gets its own
matcher, and rows without a schema pay nothing.

The JSON is written on one line with `", "` and `": "` between items (OpenAI's output looks the
same): free whitespace would let a small model spend its `max_tokens` on newlines and tabs.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import llguidance
import llguidance.hf
import llguidance.torch
import torch

from .contract import InvalidInput

if TYPE_CHECKING:
    from llguidance._lib import JsonCompileOptions

T = TypeVar("T")

_BIT_POSITIONS = torch.arange(32, dtype=torch.int32)  # bit i of a mask word is token 32 * word + i
_LAYOUT: JsonCompileOptions = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


class JsonGrammars:
    """Compiles JSON schemas for one tokenizer and masks a batch's logits to what each row allows."""

    def __init__(self, hf_tokenizer: Any) -> None:
        self.tokenizer = llguidance.hf.from_tokenizer(hf_tokenizer)
        self.vocab_size: int = self.tokenizer.vocab_size

    def compile(self, schema_json: str, field: str = "response_format") -> Grammar:
        """The grammar for a schema; InvalidInput (a 400 naming `field`) for what cannot be enforced.

        It runs on a thread of its own with a large stack: the compiler recurses once per level of
        nesting, and the stack a request thread happens to have must not decide whether an admitted
        schema compiles or overflows (which would kill the process, not fail the request).
        """
        return _on_large_stack(lambda: self._compile(schema_json, field))

    def _compile(self, schema_json: str, field: str) -> Grammar:
        try:
            grammar = llguidance.LLMatcher.grammar_from_json_schema(schema_json, defaults=_LAYOUT)
        except (ValueError, TypeError) as exc:
            raise _unsupported(str(exc), field) from None
        start = llguidance.LLMatcher(self.tokenizer, grammar)  # compiles it: unknown keywords fail here
        if start.is_error():
            raise _unsupported(start.get_error(), field)
        return Grammar(start)

    def mask(self, logits: torch.Tensor, rows: list[int], matchers: list[Any]) -> None:
        """Set to -inf, in place, every token the matcher of each row in `rows` does not allow next.

        The bits are unpacked with plain tensor ops: llguidance's own helper is a torch.compile'd
        kernel, which on a CPU compiles C++ for seconds at each new batch size, mid-request (it
        cost 20% of throughput at c=16 in make bench), and pins memory meant for a GPU.
        """
        words = (self.vocab_size + 31) // 32
        bitmask = torch.full((len(rows), words), -1, dtype=torch.int32)
        for i, matcher in enumerate(matchers):
            llguidance.torch.fill_next_token_bitmask(matcher, bitmask, i)
        allowed = ((bitmask.unsqueeze(-1) >> _BIT_POSITIONS) & 1).flatten(1)[:, : self.vocab_size].bool()
        constrained = logits[rows]
        constrained[:, self.vocab_size:] = float("-inf")  # the model's padding ids are never valid text
        constrained[:, : self.vocab_size].masked_fill_(~allowed.to(logits.device), float("-inf"))
        logits[rows] = constrained


@dataclass(frozen=True)
class Grammar:
    """A compiled schema: a matcher in its start state, never advanced, copied for each sequence.

    A copy costs microseconds where building a matcher from the grammar costs about 10 ms; the
    runner thread only ever copies.
    """

    start: Any  # llguidance.LLMatcher

    def matcher(self) -> Any:
        """A fresh matcher: one per generated sequence, advanced token by token."""
        return self.start.deep_copy()


COMPILER_STACK_BYTES = 64 * 1024 * 1024  # ~8 KB a level: room for 40x the most nesting a config may admit
_stack_size_lock = threading.Lock()  # threading.stack_size is process-wide: set, start, restore


def _on_large_stack(work: Callable[[], T]) -> T:
    """`work()` on a new thread with a COMPILER_STACK_BYTES stack (address space, touched only as used)."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as exc:  # noqa: BLE001 - raised again on the caller's thread
            failure.append(exc)

    with _stack_size_lock:
        previous = threading.stack_size(COMPILER_STACK_BYTES)
        try:
            thread = threading.Thread(target=run, name="grammar-compiler", daemon=True)
            thread.start()
        finally:
            threading.stack_size(previous)
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]


def json_object_schema() -> str:
    """OpenAI's `json_object` mode: any JSON object."""
    return json.dumps({"type": "object"})


def _unsupported(reason: str, field: str) -> InvalidInput:
    return InvalidInput(f"this JSON schema cannot be enforced: {reason.strip()}", param=field,
                        code="unsupported_schema")
