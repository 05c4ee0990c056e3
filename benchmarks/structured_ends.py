"""How often SmolLM2's structured answers run to max_tokens for want of an end, and forced tool calls' shapes.

    .venv/bin/python benchmarks/structured_ends.py [--samples 40] [--max-tokens 120]

Sampled (temperature 1, fixed seeds) from the default chat model behind a server with default settings:

- an integer with no bounds, `json_object`, and an object that says nothing of other keys: how many answers end
  with `finish_reason: "length"` (the defaults of api/generation/structured.py exist to make that 0);
- forced tool calls (`tool_choice: "required"`) of a flat `{"city": string}` tool and of a nested pydantic
  tool (`$defs`): every answer must be `tool_calls`, parseable when it stopped, `length` when cut, never content.

Prints one line per case; the numbers go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).parent))

from run import GEN_MODEL, Machine, config_with, machine_report

from maas_server.testing import ServerProcess

ASK = "Tell me about the city of Paris as JSON."
FORMATS: dict[str, dict[str, Any]] = {
    "unbounded integer": {"type": "json_schema", "json_schema": {"name": "n", "schema": {
        "type": "object", "properties": {"population": {"type": "integer"}}, "required": ["population"],
        "additionalProperties": False}}},
    "json_object": {"type": "json_object"},
    "open object": {"type": "json_schema", "json_schema": {"name": "city", "schema": {
        "type": "object", "properties": {"population": {"type": "integer"}, "name": {"type": "string"}},
        "required": ["population", "name"]}}},
}
CITY = {"type": "object", "properties": {"name": {"type": "string"}, "country": {"type": "string"}},
        "required": ["name", "country"]}
TOOLS: dict[str, dict[str, Any]] = {
    "flat tool": {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
    "nested tool ($defs)": {"type": "function", "function": {"name": "plan_trip", "parameters": {
        "$defs": {"City": CITY}, "type": "object", "required": ["start", "end"],
        "properties": {"start": {"$ref": "#/$defs/City"}, "end": {"$ref": "#/$defs/City"}}}}},
}


def choices(url: str, samples: int, max_tokens: int, **extra: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seed = 0
    while len(out) < samples:
        n = min(8, samples - len(out))
        seed += 1
        r = requests.post(f"{url}/v1/chat/completions", timeout=600, json={
            "model": GEN_MODEL, "messages": [{"role": "user", "content": ASK}], "temperature": 1.0, "seed": seed,
            "n": n, "max_tokens": max_tokens, **extra})
        r.raise_for_status()
        out += r.json()["choices"]
    return out


def parses(text: str | None) -> bool:
    try:
        json.loads(text or "")
    except ValueError:
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--max-tokens", type=int, default=120)
    args = parser.parse_args()
    before = Machine.now()
    with tempfile.TemporaryDirectory() as tmp, ServerProcess(config_with([GEN_MODEL], Path(tmp))) as url:
        for name, response_format in FORMATS.items():
            found = choices(url, args.samples, args.max_tokens, response_format=response_format)
            cut = sum(c["finish_reason"] == "length" for c in found)
            valid = sum(parses(c["message"]["content"]) for c in found)
            print(f"{name}: {cut} of {len(found)} ran to max_tokens; {valid} parse", flush=True)
        for name, tool in TOOLS.items():
            found = choices(url, args.samples, args.max_tokens, tools=[tool], tool_choice="required")
            calls = [c for c in found if c["message"].get("tool_calls")]
            as_content = sum(bool(c["message"].get("content")) for c in found)
            stopped = [c for c in calls if c["finish_reason"] == "tool_calls"]
            parsed = sum(all(parses(t["function"]["arguments"]) for t in c["message"]["tool_calls"]) for c in stopped)
            cut = sum(c["finish_reason"] == "length" for c in calls)
            print(f"{name}: {len(calls)} of {len(found)} are tool_calls ({parsed} of {len(stopped)} stopped ones "
                  f"parse, {cut} cut at max_tokens); {as_content} as content", flush=True)
    print(machine_report("structured ends", before, Machine.now(), 0)[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
