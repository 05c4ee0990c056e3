"""Server vs in-process on the same models, measured in one run; prints one table of ratios.

    make bench                     # or: .venv/bin/python benchmarks/run.py [--quick]

Absolute numbers move from machine to machine; the ratios measured in one run are the figures
that matter. No peer server yet (issue 4 adds `transformers serve --continuous-batching`).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests

from maas_server.config import load_config
from maas_server.testing import ServerProcess

SENTENCES = [f"Sentence number {i} is about cats, markets and the weather in spring." for i in range(64)]
PROMPT = "Once upon a time, in a small village by the sea, there lived"  # continues without an early EOS


@dataclass
class Row:
    task: str
    setup: str
    rate: float          # items/s (or tokens/s for generation)
    unit: str
    p50_ms: float | None = None
    p95_ms: float | None = None
    ttft_ms: float | None = None
    vs_limit: float | None = None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def drive(concurrency: int, total: int, call) -> tuple[float, list[float], list]:  # type: ignore[no-untyped-def]
    """Run `total` calls with `concurrency` threads; returns wall time, latencies, call results."""
    def timed(i: int):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        out = call(i)
        return time.perf_counter() - start, out

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(timed, range(total)))
    return time.perf_counter() - start, [r[0] for r in results], [r[1] for r in results]


# -- in-process references (the same adapters the server runs)

def load(name: str):  # type: ignore[no-untyped-def]
    from maas_server.runtime.registry import load_configured_model

    config = load_config()
    return load_configured_model(config.model(name), config)


def inprocess_embeddings(batch: int, rounds: int) -> tuple[float, float]:
    model = load("all-minilm-l6-v2")
    latencies = []
    for i in range(20):
        start = time.perf_counter()
        model.embed([model.prepare_text(SENTENCES[i])])
        latencies.append(time.perf_counter() - start)
    start = time.perf_counter()
    for r in range(rounds):
        model.embed([model.prepare_text(s) for s in SENTENCES[:batch]])
    rate = batch * rounds / (time.perf_counter() - start)
    return rate, statistics.median(latencies) * 1000


def inprocess_generation(batch: int, tokens: int) -> float:
    from maas_server.models.text_generation import GenerationRequest

    model = load("smollm2-135m-instruct")
    request = GenerationRequest(prompt=PROMPT, max_tokens=tokens, temperature=0, n=batch)
    start = time.perf_counter()
    result = model.run([model.prepare(request)])[0]
    return sum(c.completion_tokens for c in result.choices) / (time.perf_counter() - start)


def inprocess_images(batch: int, rounds: int, image) -> float:  # type: ignore[no-untyped-def]
    model = load("efficientnet-lite0")
    start = time.perf_counter()
    for _ in range(rounds):
        model.classify([model.prepare(image) for _ in range(batch)])
    return batch * rounds / (time.perf_counter() - start)


# -- the server over HTTP

def server_embeddings(url: str, concurrency: int, total: int) -> Row:
    session = requests.Session()
    call = lambda i: session.post(f"{url}/v1/embeddings", json={"input": SENTENCES[i % 64]}, timeout=60).raise_for_status()  # noqa: E731
    wall, lat, _ = drive(concurrency, total, call)
    return Row("embeddings", f"server c={concurrency}", total / wall, "texts/s", percentile(lat, .5), percentile(lat, .95))


def server_generation(url: str, concurrency: int, total: int, tokens: int) -> Row:
    def call(i: int) -> tuple[int, float]:
        start, first, count = time.perf_counter(), None, 0
        body = {"prompt": PROMPT, "max_tokens": tokens, "temperature": 0, "stream": True,
                "stream_options": {"include_usage": True}}
        with requests.post(f"{url}/v1/completions", json=body, stream=True, timeout=600) as r:
            for line in r.iter_lines():
                if line.startswith(b"data: {"):
                    chunk = json.loads(line[6:])
                    if first is None and chunk["choices"] and chunk["choices"][0]["text"]:
                        first = time.perf_counter() - start
                    if chunk.get("usage"):
                        count = chunk["usage"]["completion_tokens"]
        return count, first or 0.0

    wall, lat, out = drive(concurrency, total, call)
    tokens_total = sum(c for c, _ in out)
    ttft = statistics.median(t for _, t in out) * 1000
    return Row("generation", f"server c={concurrency}", tokens_total / wall, "tokens/s", percentile(lat, .5),
               percentile(lat, .95), ttft)


def server_images(url: str, concurrency: int, total: int, jpeg: bytes) -> Row:
    payload = {"image": base64.b64encode(jpeg).decode(), "top_k": 1}
    call = lambda i: requests.post(f"{url}/v1/classify/image", json=payload, timeout=60).raise_for_status()  # noqa: E731
    wall, lat, _ = drive(concurrency, total, call)
    return Row("image", f"server c={concurrency}", total / wall, "images/s", percentile(lat, .5), percentile(lat, .95))


def print_table(rows: list[Row]) -> None:
    print(f"\n| task | setup | throughput | p50 ms | p95 ms | TTFT p50 ms | vs in-process |")
    print("|---|---|---|---|---|---|---|")
    fmt = lambda v, spec: "" if v is None else format(v, spec)  # noqa: E731
    for r in rows:
        print(f"| {r.task} | {r.setup} | {r.rate:.1f} {r.unit} | {fmt(r.p50_ms, '.1f')} | {fmt(r.p95_ms, '.1f')} | "
              f"{fmt(r.ttft_ms, '.0f')} | {fmt(r.vs_limit, '.2f')} |")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    args = parser.parse_args()
    scale = 1 if args.quick else 3
    tokens = 32 if args.quick else 64

    import skimage.data
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(skimage.data.chelsea()).save(buf, "JPEG")
    jpeg, image = buf.getvalue(), Image.fromarray(skimage.data.chelsea())

    rows: list[Row] = []
    emb_limit, emb_single_ms = inprocess_embeddings(32, 4 * scale)
    rows.append(Row("embeddings", "in-process batch 32", emb_limit, "texts/s"))
    rows.append(Row("embeddings", "in-process batch 1", 1000 / emb_single_ms, "texts/s", emb_single_ms))
    gen_limit = inprocess_generation(16, tokens)
    gen_single = inprocess_generation(1, tokens)
    rows += [Row("generation", "in-process batch 16", gen_limit, "tokens/s"),
             Row("generation", "in-process batch 1", gen_single, "tokens/s")]
    img_limit = inprocess_images(16, scale, image)
    rows.append(Row("image", "in-process batch 16", img_limit, "images/s"))

    with ServerProcess() as url:
        for c in (1, 4, 16, 32, 64):
            row = server_embeddings(url, c, 64 * scale)
            row.vs_limit = row.rate / emb_limit
            rows.append(row)
        for c in (1, 4, 16):
            row = server_generation(url, c, max(c, 2 * scale), tokens)
            row.vs_limit = row.rate / gen_limit
            rows.append(row)
        for c in (1, 16):
            row = server_images(url, c, 16 * scale, jpeg)
            row.vs_limit = row.rate / img_limit
            rows.append(row)
    print_table(rows)
    print(f"\nembeddings: server c=1 p50 overhead over in-process single call: "
          f"{next(r for r in rows if r.setup == 'server c=1' and r.task == 'embeddings').p50_ms - emb_single_ms:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
