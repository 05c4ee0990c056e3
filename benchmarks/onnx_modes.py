"""The encoders on torch float32, ONNX Runtime float32 and ONNX Runtime int8: items/s and quality, in one run.

Each default encoder (MiniLM embeddings, the MiniLM sentiment head, EfficientNet-Lite0) is loaded
through the server's own loader three times, with ``runtime`` = "torch", "onnx" and "onnx-int8"
(a mode that missed its quality gate at load serves torch, and the table says so). Each mode runs
the same prepared batches of 1 and 32 items, alternating mode by mode within each repeat, so every
ratio is between figures measured back to back. Quality, against torch float32 on inputs the load
gate never saw:
- embeddings: cosine of the vectors of the 120 sentiment probe texts (tests/data), mean and min;
- sentiment: accuracy on the held-out probe set (tests/data/sentiment_probes_test.jsonl, 70 texts)
  and the share of labels that agree with torch's;
- images: top-1 agreement on 64 generated images (another seed than the gate's).

    .venv/bin/python benchmarks/onnx_modes.py [--repeats 3] [--threads 1] [--cache-dir DIR]

On a busy machine run it with ``--threads 1`` too: torch's OpenMP team of 2 loses far more than one
thread does when another process takes one of the cores, and ONNX Runtime's pool loses less.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from run import Machine, load_settings, machine_report

ROOT = Path(__file__).resolve().parent.parent
PROBES = [ROOT / "tests" / "data" / f"sentiment_probes_{part}.jsonl" for part in ("dev", "test")]
MODES = ("torch", "onnx", "onnx-int8")
MODELS = ("all-minilm-l6-v2", "minilm-sentiment", "efficientnet-lite0")


def probes(path: Path) -> list[tuple[str, str]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [(row["text"], row["label"]) for row in rows]


def load(name: str, runtime: str, cache_dir: Path | None) -> Any:
    from maas_server.runtime.assembly import load_and_warm

    settings = load_settings()
    base = settings.model(name)
    assert base is not None, f"{name} is not in the default config"
    return load_and_warm(base.model_copy(update={"runtime": runtime}), cache_dir or settings.cache_dir)


def workload(name: str, adapter: Any) -> tuple[Callable[[list[Any]], Any], list[Any]]:
    """The adapter's batch call and 32 prepared items for it."""
    from maas_server.models.text_io import TextItem

    texts = [text for path in PROBES for text, _ in probes(path)][:32]
    if name == "all-minilm-l6-v2":
        return adapter.embed, [adapter.prepare_text(t) for t in texts]
    if name == "minilm-sentiment":
        return adapter.classify, [adapter.prepare(TextItem(t)) for t in texts]
    return adapter.classify, list(images(adapter, 32))


def images(adapter: Any, count: int, seed: int = 1) -> torch.Tensor:
    from maas_server.models.image_classification import gate_sample

    return gate_sample(adapter.transform, count, seed)[0][0]


def items_per_second(run: Callable[[list[Any]], Any], items: list[Any], batch: int) -> float:
    calls = max(2, 24 // batch)
    started = time.perf_counter()
    for i in range(calls):
        run(items[:batch] if batch > 1 else [items[i % len(items)]])
    return calls * batch / (time.perf_counter() - started)


def quality(name: str, reference: Any, adapter: Any) -> str:
    """The mode's quality against torch float32, as the table prints it."""
    from maas_server.models.text_io import TextItem

    if name == "all-minilm-l6-v2":
        texts = [text for path in PROBES for text, _ in probes(path)]
        a = torch.tensor([v.values for v in reference.embed([reference.prepare_text(t) for t in texts])])
        b = torch.tensor([v.values for v in adapter.embed([adapter.prepare_text(t) for t in texts])])
        cosine = torch.nn.functional.cosine_similarity(a, b, dim=-1)
        return f"cosine mean {cosine.mean():.4f}, min {cosine.min():.4f} ({len(texts)} texts)"
    if name == "minilm-sentiment":
        held_out = probes(PROBES[1])

        def labels(model: Any) -> list[str]:
            return [s.labels[0][0] for s in model.classify([model.prepare(TextItem(t)) for t, _ in held_out])]

        ref, got = labels(reference), labels(adapter)
        accuracy = sum(g == truth for g, (_, truth) in zip(got, held_out)) / len(held_out)
        ref_accuracy = sum(r == truth for r, (_, truth) in zip(ref, held_out)) / len(held_out)
        agree = sum(r == g for r, g in zip(ref, got)) / len(held_out)
        return (f"held-out accuracy {accuracy:.1%} (torch {ref_accuracy:.1%}), labels agree {agree:.1%} "
                f"({len(held_out)} texts)")
    pixels = list(images(reference, 64))
    top = [[s.labels[0][0] for s in model.classify(pixels)] for model in (reference, adapter)]
    return f"top-1 agreement {sum(a == b for a, b in zip(*top)) / len(pixels):.1%} ({len(pixels)} generated images)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache-dir", type=Path, default=None, help="where exports are cached (default: the "
                                                                     "server's cache_dir)")
    parser.add_argument("--threads", type=int, default=None, help="torch's threads, and so ONNX Runtime's (default: "
                                                                  "torch's own choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    before, started = Machine.now(), time.perf_counter()
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model_name = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("Model name")),
                      "?")
    vnni = "avx512_vnni" in cpu or "avx_vnni" in cpu
    print(f"CPU {model_name} (VNNI: {'yes' if vnni else 'no'}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}")
    print("\n| model | mode (served by) | batch 1 items/s | batch 32 items/s | batch 1 vs torch | batch 32 vs torch "
          "| quality against torch float32 | load average |")
    print("|---|---|---|---|---|---|---|---|")
    for name in MODELS:
        adapters = {mode: load(name, mode, args.cache_dir) for mode in MODES}
        rates: dict[tuple[str, int], list[float]] = {}
        for repeat in range(args.repeats):
            order = list(adapters.items()) if repeat % 2 == 0 else list(reversed(adapters.items()))
            for batch in (1, 32):
                for mode, adapter in order:
                    run, items = workload(name, adapter)
                    rates.setdefault((mode, batch), []).append(items_per_second(run, items, batch))
        for mode, adapter in adapters.items():
            ratios = {b: [r / t for r, t in zip(rates[(mode, b)], rates[("torch", b)])] for b in (1, 32)}
            print(f"| {name} | {mode} ({adapter.describe().runtime}, {adapter.describe().dtype}) | "
                  f"{_spread(rates[(mode, 1)])} | {_spread(rates[(mode, 32)])} | {_ratio(ratios[1])} | "
                  f"{_ratio(ratios[32])} | {quality(name, adapters['torch'], adapter)} | "
                  f"{os.getloadavg()[0]:.2f} |", flush=True)
    print(machine_report("onnx modes", before, Machine.now(), time.perf_counter() - started)[0])
    return 0


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def _ratio(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}x ({min(values):.2f}-{max(values):.2f})"


if __name__ == "__main__":
    sys.exit(main())
