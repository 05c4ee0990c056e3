"""Lower-cost CPU modes for generation: tokens/s and greedy agreement against float32.

The default generation model is loaded through the server's own loader three ways:
- float32 (the CPU default);
- bfloat16 (`dtype = "bfloat16"` in the model's config);
- int8: torch's dynamic quantization of every Linear but the LM head, which is not a config
  option; it is measured here to decide whether it should become one.

Each mode decodes the same static batches, alternating mode by mode within each repeat, so that
every ratio is between figures measured back to back: 64 greedy tokens at batch 1 and batch 16.
Agreement: 16 prompts, 32 greedy tokens each, compared with float32's text; the mean of the
matching prefixes, in tokens, says how early the modes part. Run it on an idle machine:

    .venv/bin/python benchmarks/cpu_modes.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from run import GEN_MODEL, PROMPT, Machine, load_settings, machine_report

AGREEMENT_PROMPTS = [
    "The capital of France is", "Once upon a time", "def fibonacci(n):", "The best way to learn Python is",
    "Water boils at", "In 1969, the first man on the moon", "My favourite food is", "The quick brown fox",
    "To make a cup of tea, first", "The three primary colours are", "import numpy as np\n", "Dear Sir or Madam,",
    "The largest planet in the solar system", "A haiku about autumn:\n", "SELECT name FROM", "Photosynthesis is",
]


def load_mode(dtype: str) -> Any:
    """The generation adapter as the server builds it, with `dtype` in place of the config's."""
    from maas_server.runtime.assembly import load_configured_model

    settings = load_settings()
    base = settings.model(GEN_MODEL)
    assert base is not None, f"{GEN_MODEL} is not in the default config"
    config = base.model_copy(update={"dtype": dtype})
    return load_configured_model(config, settings)


def int8_copy(adapter: Any) -> Any:
    """A copy whose decoder Linear layers are int8 (dynamic quantization); the LM head stays float32."""
    model = adapter.model
    linears = {name for name, module in model.named_modules()
               if isinstance(module, torch.nn.Linear) and name != "lm_head"}
    quantized = copy.copy(adapter)
    quantized.model = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), linears, dtype=torch.qint8)
    return quantized


def tokens_per_second(adapter: Any, batch: int, tokens: int = 64) -> float:
    from maas_server.models.generation_io import GenerationRequest

    request = GenerationRequest(prompt=PROMPT, max_tokens=tokens, temperature=0, n=batch)
    start = time.perf_counter()
    result = adapter.run([adapter.prepare(request)])[0]
    return sum(c.completion_tokens for c in result.choices) / (time.perf_counter() - start)


def completions(adapter: Any, tokens: int = 32) -> list[list[int]]:
    from maas_server.models.generation_io import GenerationRequest

    out = []
    for prompt in AGREEMENT_PROMPTS:
        request = GenerationRequest(prompt=prompt, max_tokens=tokens, temperature=0, logprobs=0)
        choice = adapter.run([adapter.prepare(request)])[0].choices[0]
        out.append([t.id for t in choice.tokens])
    return out


def agreement(reference: list[list[int]], other: list[list[int]]) -> tuple[int, float]:
    """Completions identical to the reference, and the mean length of the prefix they share (tokens)."""
    def shared(a: list[int], b: list[int]) -> int:
        return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))

    pairs = list(zip(reference, other))
    return sum(a == b for a, b in pairs), statistics.mean(shared(a, b) for a, b in pairs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    before, started = Machine.now(), time.perf_counter()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}")
    fp32 = load_mode("float32")
    modes = {"float32": fp32, "bfloat16": load_mode("bfloat16"), "int8 dynamic": int8_copy(fp32)}
    for adapter in modes.values():
        tokens_per_second(adapter, 4, 8)  # warm
    rates: dict[tuple[str, int], list[float]] = {}
    for repeat in range(args.repeats):
        order = list(modes.items()) if repeat % 2 == 0 else list(reversed(modes.items()))
        for batch in (1, 16):
            for name, adapter in order:
                rates.setdefault((name, batch), []).append(tokens_per_second(adapter, batch))
    reference = completions(fp32)
    print(f"\n| mode | batch 1 tokens/s | batch 16 tokens/s | batch 16 vs float32 | identical of "
          f"{len(AGREEMENT_PROMPTS)} | mean shared prefix (of 32 tokens) |")
    print("|---|---|---|---|---|---|")
    for name, adapter in modes.items():
        same, prefix = agreement(reference, completions(adapter)) if name != "float32" else (len(reference), 32.0)
        ratios = [r / f for r, f in zip(rates[(name, 16)], rates[("float32", 16)])]
        print(f"| {name} | {_spread(rates[(name, 1)])} | {_spread(rates[(name, 16)])} | "
              f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) | {same} | {prefix:.1f} |")
    print(machine_report("cpu modes", before, Machine.now(), time.perf_counter() - started)[0])
    return 0


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


if __name__ == "__main__":
    sys.exit(main())
