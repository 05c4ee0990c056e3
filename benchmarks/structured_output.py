"""How often SmolLM2 writes valid JSON for a schema with and without constrained decoding.

    .venv/bin/python benchmarks/structured_output.py

The five schemas and prompts of tests/integration/test_structured_output.py, ten sampled
generations each (temperature 0.7, top_p 0.9, two seeds x n=5), once with the schema enforced
(`response_format`) and once with the schema only written into the prompt, as a user without
structured output would ask. Prints valid / total for both; the numbers go to docs/performance.md.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).parent))

from run import GEN_MODEL, config_with

from maas_server.testing import ServerProcess
from tests.integration.test_structured_output import SCHEMAS


def valid(text: str, schema: dict[str, Any]) -> bool:
    try:
        jsonschema.validate(json.loads(text, parse_float=Decimal), json.loads(json.dumps(schema), parse_float=Decimal))
    except (ValueError, jsonschema.ValidationError):
        return False
    return True


def generations(url: str, prompt: str, schema: dict[str, Any], enforced: bool) -> list[str]:
    texts = []
    for seed in (1, 2):
        body: dict[str, Any] = {"messages": [{"role": "user", "content": prompt}], "n": 5, "max_tokens": 160,
                                "temperature": 0.7, "top_p": 0.9, "seed": seed}
        if enforced:
            body["response_format"] = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
        else:
            body["messages"][0]["content"] = (f"{prompt}\nAnswer with only JSON that follows this JSON schema:\n"
                                              f"{json.dumps(schema)}")
        r = requests.post(f"{url}/v1/chat/completions", json=body, timeout=600, headers={"X-Request-Timeout": "300"})
        r.raise_for_status()
        texts += [c["message"]["content"] for c in r.json()["choices"]]
    return texts


def main() -> int:
    print(f"load average {os.getloadavg()[0]:.2f}")
    print("| schema | enforced: valid | prompt only: valid |")
    print("|---|---|---|")
    totals = [0, 0, 0]
    with tempfile.TemporaryDirectory() as tmp, ServerProcess(config_with([GEN_MODEL], Path(tmp))) as url:
        for name, (prompt, schema) in SCHEMAS.items():
            enforced = sum(valid(t, schema) for t in generations(url, prompt, schema, True))
            free = sum(valid(t, schema) for t in generations(url, prompt, schema, False))
            totals = [totals[0] + enforced, totals[1] + free, totals[2] + 10]
            print(f"| {name} | {enforced}/10 | {free}/10 |", flush=True)
    print(f"| all | {totals[0]}/{totals[2]} | {totals[1]}/{totals[2]} |")
    print(f"load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
