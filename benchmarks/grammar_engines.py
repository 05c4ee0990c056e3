"""Which grammar engine for constrained decoding: compile time, per-token mask cost and schema coverage.

    .venv/bin/python benchmarks/grammar_engines.py

Each engine gets the SmolLM2 tokenizer (49,152 tokens) the default chat model uses, compiles the
same JSON schemas, and then walks a valid instance of each, token by token, timing what the
decode loop would do per step: fill the row's allowed-token mask, then advance by the chosen
token. The engines that are not installed are skipped (`pip install xgrammar llguidance
outlines-core` to compare all three). Numbers go to docs/performance.md.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

SCHEMAS: dict[str, tuple[dict[str, Any], Any]] = {
    "flat object": ({"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
                     "required": ["name", "age"], "additionalProperties": False},
                    {"name": "Ada Lovelace", "age": 36}),
    "nested + array": ({"type": "object", "properties": {
        "city": {"type": "string"},
        "people": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3}},
            "required": ["name", "tags"]}, "minItems": 1}},
        "required": ["city", "people"]},
        {"city": "Paris", "people": [{"name": "Ada", "tags": ["math", "poetry"]}, {"name": "Alan", "tags": []}]}),
    "enum + bounded numbers": ({"type": "object", "properties": {
        "mood": {"enum": ["happy", "sad", "neutral"]},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "count": {"type": "integer", "minimum": 1, "maximum": 10}},
        "required": ["mood", "score", "count"]}, {"mood": "happy", "score": 0.75, "count": 3}),
    "$ref + anyOf": ({"$defs": {"point": {"type": "object", "properties": {"x": {"type": "number"},
                                                                          "y": {"type": "number"}},
                                          "required": ["x", "y"]}},
                      "type": "object", "properties": {
                          "shape": {"anyOf": [{"$ref": "#/$defs/point"}, {"type": "string"}]},
                          "label": {"type": ["string", "null"]}},
                      "required": ["shape", "label"]}, {"shape": {"x": 1.5, "y": -2}, "label": None}),
    "string pattern + format": ({"type": "object", "properties": {
        "code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{2}$"},
        "when": {"type": "string", "format": "date"}}, "required": ["code", "when"]},
        {"code": "ABC-12", "when": "2026-12-03"}),
}


def tokenizer() -> Any:
    """The default chat model's tokenizer, loaded the way the server loads it."""
    from maas_server.runtime.assembly import load_configured_model
    from maas_server.settings import load_settings

    settings = load_settings()
    config = settings.model("smollm2-135m-instruct")
    assert config is not None
    return load_configured_model(config, settings).tokenizer  # type: ignore[attr-defined]


# Schema features beyond the basics: an engine must either honour each or refuse the schema; one
# that accepts a schema and ignores a keyword lets invalid output through.
FEATURES: dict[str, dict[str, Any]] = {
    "minLength/maxLength": {"type": "string", "minLength": 3, "maxLength": 5},
    "const": {"type": "object", "properties": {"v": {"const": "x"}}, "required": ["v"]},
    "oneOf": {"oneOf": [{"type": "integer"}, {"type": "boolean"}]},
    "allOf": {"allOf": [{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
                        {"type": "object", "properties": {"b": {"type": "integer"}}, "required": ["b"]}]},
    "uniqueItems": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 3}, "uniqueItems": True,
                    "maxItems": 4},
    "multipleOf": {"type": "integer", "multipleOf": 5, "minimum": 0, "maximum": 100},
    "exclusiveMinimum": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
    "patternProperties": {"type": "object", "patternProperties": {"^x_": {"type": "integer"}},
                          "additionalProperties": False},
    "additionalProperties schema": {"type": "object", "additionalProperties": {"type": "integer"}},
    "if/then": {"type": "object", "properties": {"a": {"type": "integer"}},
                "if": {"properties": {"a": {"const": 1}}}, "then": {"required": ["b"]}},
    "format email": {"type": "string", "format": "email"},
    "format uuid": {"type": "string", "format": "uuid"},
    "recursive $ref": {"$defs": {"n": {"type": "object", "properties": {
        "c": {"type": "array", "items": {"$ref": "#/$defs/n"}, "maxItems": 2}}, "required": ["c"]}},
        "$ref": "#/$defs/n"},
    "minItems/maxItems": {"type": "array", "items": {"type": "string", "maxLength": 3}, "minItems": 2,
                          "maxItems": 3},
    "not": {"not": {"type": "string"}},
}


class Engine:
    name = ""

    def compile(self, schema: dict[str, Any]) -> Any: ...
    def walk(self, compiled: Any, ids: list[int]) -> list[float]: ...
    def start(self, compiled: Any) -> Any: ...
    def allowed(self, state: Any) -> list[int]: ...
    def advance(self, state: Any, token: int) -> None: ...


class LLGuidance(Engine):
    name = "llguidance"

    def __init__(self, tok: Any) -> None:
        import llguidance
        import llguidance.hf
        import llguidance.torch

        self.ll, self.lt = llguidance, llguidance.torch
        self.tokenizer = llguidance.hf.from_tokenizer(tok)

    def compile(self, schema: dict[str, Any]) -> Any:
        grammar = self.ll.LLMatcher.grammar_from_json_schema(json.dumps(schema))
        matcher = self.ll.LLMatcher(self.tokenizer, grammar)  # compiles; an unsupported schema errors here
        if matcher.is_error():
            raise ValueError(matcher.get_error())
        return grammar

    def walk(self, compiled: Any, ids: list[int]) -> list[float]:
        matcher = self.ll.LLMatcher(self.tokenizer, compiled)
        mask = self.lt.allocate_token_bitmask(1, self.tokenizer.vocab_size)
        times = []
        for token in ids:
            start = time.perf_counter()
            self.lt.fill_next_token_bitmask(matcher, mask, 0)
            ok = matcher.consume_token(token)
            times.append(time.perf_counter() - start)
            if not ok:
                raise ValueError(f"rejected token {token}: {matcher.get_error()}")
        return times


    def start(self, compiled: Any) -> Any:
        return self.ll.LLMatcher(self.tokenizer, compiled), self.lt.allocate_token_bitmask(1, self.tokenizer.vocab_size)

    def allowed(self, state: Any) -> list[int]:
        matcher, mask = state
        self.lt.fill_next_token_bitmask(matcher, mask, 0)
        return _allowed(mask, self.tokenizer.vocab_size, self.lt.apply_token_bitmask_inplace)

    def advance(self, state: Any, token: int) -> None:
        state[0].consume_token(token)


class XGrammar(Engine):
    name = "xgrammar"

    def __init__(self, tok: Any) -> None:
        import xgrammar

        self.xgr = xgrammar
        self.info = xgrammar.TokenizerInfo.from_huggingface(tok, vocab_size=len(tok))
        self.compiler = xgrammar.GrammarCompiler(self.info)

    def compile(self, schema: dict[str, Any]) -> Any:
        return self.compiler.compile_json_schema(json.dumps(schema))

    def walk(self, compiled: Any, ids: list[int]) -> list[float]:
        matcher = self.xgr.GrammarMatcher(compiled)
        mask = self.xgr.allocate_token_bitmask(1, self.info.vocab_size)
        times = []
        for token in ids:
            start = time.perf_counter()
            matcher.fill_next_token_bitmask(mask, 0)
            ok = matcher.accept_token(token)
            times.append(time.perf_counter() - start)
            if not ok:
                raise ValueError(f"rejected token {token}")
        return times


    def start(self, compiled: Any) -> Any:
        return self.xgr.GrammarMatcher(compiled), self.xgr.allocate_token_bitmask(1, self.info.vocab_size)

    def allowed(self, state: Any) -> list[int]:
        matcher, mask = state
        matcher.fill_next_token_bitmask(mask, 0)
        return _allowed(mask, self.info.vocab_size, self.xgr.apply_token_bitmask_inplace)

    def advance(self, state: Any, token: int) -> None:
        state[0].accept_token(token)


def _allowed(mask: Any, vocab_size: int, apply: Callable[[Any, Any], None]) -> list[int]:
    import torch

    logits = torch.zeros(1, vocab_size)
    apply(logits, mask)
    return torch.isfinite(logits[0]).nonzero().flatten().tolist()  # type: ignore[no-any-return]


def random_walks(engine: Engine, schema: dict[str, Any], eos: int, decode: Callable[[list[int]], str],
                 walks: int = 15) -> int:
    """Generate `walks` random outputs the grammar allows; how many fail to validate with jsonschema."""
    import random

    import jsonschema

    compiled, rng, invalid = engine.compile(schema), random.Random(0), 0
    for _ in range(walks):
        state, out = engine.start(compiled), []
        for _ in range(120):
            allowed = engine.allowed(state)
            if eos in allowed and (len(allowed) == 1 or rng.random() < 0.4):
                break
            token = rng.choice([a for a in allowed if a != eos])
            engine.advance(state, token)
            out.append(token)
        else:
            continue  # did not end within 120 tokens: not judged
        try:
            jsonschema.validate(json.loads(decode(out)), schema)
        except (ValueError, jsonschema.ValidationError):
            invalid += 1
    return invalid


class OutlinesCore(Engine):
    name = "outlines-core"

    def __init__(self, tok: Any) -> None:
        import outlines_core

        self.oc = outlines_core
        vocab: dict[str, list[int]] = {}
        for token, token_id in tok.get_vocab().items():
            if token_id != tok.eos_token_id:
                vocab.setdefault(token, []).append(token_id)
        self.vocabulary = outlines_core.Vocabulary(tok.eos_token_id, vocab)

    def compile(self, schema: dict[str, Any]) -> Any:
        regex = self.oc.json_schema.build_regex_from_schema(json.dumps(schema))
        return self.oc.Index(regex, self.vocabulary)

    def walk(self, compiled: Any, ids: list[int]) -> list[float]:
        guide = self.oc.Guide(compiled)
        times = []
        for token in ids:
            start = time.perf_counter()
            allowed = guide.get_tokens()
            guide.advance(token)
            times.append(time.perf_counter() - start)
            if token not in allowed:
                raise ValueError(f"rejected token {token}")
        return times


def main() -> int:
    tok = tokenizer()
    print(f"load average {os.getloadavg()[0]:.2f}; vocabulary {len(tok)} tokens")
    engines: list[Engine] = []
    for make in (LLGuidance, XGrammar, OutlinesCore):
        try:
            engines.append(make(tok))
        except ImportError as exc:
            print(f"{make.name}: not installed ({exc})")
    print("\n| engine | schema | compile ms | per-token us p50 | p95 | tokens |")
    print("|---|---|---|---|---|---|")
    for engine in engines:
        for name, (schema, instance) in SCHEMAS.items():
            # Compact JSON: every engine's default whitespace rules allow it.
            ids = tok(json.dumps(instance, separators=(",", ":")), add_special_tokens=False)["input_ids"]
            try:
                start = time.perf_counter()
                compiled = engine.compile(schema)
                compile_ms = (time.perf_counter() - start) * 1000
                times = sorted(engine.walk(compiled, ids))
            except Exception as exc:  # noqa: BLE001 - a schema an engine cannot take is a result
                print(f"| {engine.name} | {name} | fails: {str(exc)[:80]} | | | |")
                continue
            p95 = times[int(0.95 * (len(times) - 1))]
            print(f"| {engine.name} | {name} | {compile_ms:.0f} | {statistics.median(times) * 1e6:.0f} | "
                  f"{p95 * 1e6:.0f} | {len(ids)} |")
    print("\n| feature | " + " | ".join(e.name for e in engines if e.name != "outlines-core") + " |")
    print("|---|" + "---|" * sum(e.name != "outlines-core" for e in engines))
    for feature, schema in FEATURES.items():
        cells = []
        for engine in engines:
            if engine.name == "outlines-core":  # no token mask in this version's API: walks would be slow
                continue
            try:
                invalid = random_walks(engine, schema, tok.eos_token_id, tok.decode)
                cells.append("honoured" if invalid == 0 else f"**ignored**: {invalid}/15 random outputs invalid")
            except Exception as exc:  # noqa: BLE001 - a refusal is a result
                cells.append("refused: " + str(exc).replace("\n", " ").replace("|", "/")[:60])
        print(f"| {feature} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
