"""Constrained decoding with llguidance: each row of a decode batch may follow its own JSON schema.

Why llguidance (benchmarks/grammar_engines.py, numbers in docs/performance.md): of the grammar
engines on PyPI it is the one that refuses the JSON-schema keywords it cannot enforce
(`Unimplemented keys: ["not"]`) instead of accepting the schema and letting invalid output
through, as xgrammar 0.2.8 did for allOf, if/then, not and minItems; its per-token cost (a token
mask of the vocabulary) is 20-40 us on this CPU, against a decode step of tens of milliseconds;
and it needs no torch of its own. A schema is compiled once per request; each row gets its own
matcher, and rows without a schema pay nothing.

The JSON is written on one line with `", "` and `": "` between items (OpenAI's output looks the
same): free whitespace would let a small model spend its `max_tokens` on newlines and tabs.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import llguidance
import llguidance.hf
import llguidance.torch
import torch

from .base import InvalidInput

if TYPE_CHECKING:
    from llguidance._lib import JsonCompileOptions

_BIT_POSITIONS = torch.arange(32, dtype=torch.int32)  # bit i of a mask word is token 32 * word + i
_LAYOUT: JsonCompileOptions = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


class JsonGrammars:
    """Compiles JSON schemas for one tokenizer and masks a batch's logits to what each row allows."""

    def __init__(self, hf_tokenizer: Any) -> None:
        self.tokenizer = llguidance.hf.from_tokenizer(hf_tokenizer)
        self.vocab_size: int = self.tokenizer.vocab_size

    def compile(self, schema_json: str, field: str = "response_format") -> str:
        """The grammar for a schema; InvalidInput (a 400 naming `field`) for what cannot be enforced."""
        try:
            grammar = llguidance.LLMatcher.grammar_from_json_schema(schema_json, defaults=_LAYOUT)
        except (ValueError, TypeError) as exc:
            raise _unsupported(str(exc), field) from None
        probe = llguidance.LLMatcher(self.tokenizer, grammar)  # compiles it: unknown keywords fail here
        if probe.is_error():
            raise _unsupported(probe.get_error(), field)
        return grammar

    def matcher(self, grammar: str) -> Any:
        """A fresh matcher: one per generated sequence, advanced token by token."""
        return llguidance.LLMatcher(self.tokenizer, grammar)

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


def json_object_schema() -> str:
    """OpenAI's `json_object` mode: any JSON object."""
    return json.dumps({"type": "object"})


def _unsupported(reason: str, field: str) -> InvalidInput:
    return InvalidInput(f"this JSON schema cannot be enforced: {reason.strip()}", param=field,
                        code="unsupported_schema")
