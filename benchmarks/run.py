"""Server vs in-process vs a peer server, on the same models, measured in one run; prints one table.

    make bench                                  # everything (~15 min on 2 cores)
    .venv/bin/python benchmarks/run.py --quick  # fewer requests, a smoke run
    .venv/bin/python benchmarks/run.py --only generation,overload
    .venv/bin/python benchmarks/run.py --quick --only entities,sentiment,faces

Absolute numbers move from machine to machine; the ratios measured in one run are the figures
that matter: server / in-process limit, and server / peer. The peer for generation is
`transformers serve --continuous-batching` on the same model folder (needs `.[bench]`).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from maas_server.config import default_config_text
from maas_server.settings import load_settings
from maas_server.testing import ServerProcess, free_port

SENTENCES = [f"Sentence number {i} is about cats, markets and the weather in spring." for i in range(64)]
PROMPT = "Once upon a time, in a small village by the sea, there lived"  # continues without an early EOS
MIXED_PROMPTS = [  # different lengths, for the mixed workload
    "The history of the printing press",
    PROMPT,
    "Explain to a child why the sky is blue, using a story about a curious little bird who flies higher "
    "and higher every day to find out where the color comes from.",
    "List three things to pack for a weekend trip to the mountains in autumn:",
    "In the year 2150, humanity had finally built a city on Mars. The first children born there were "
    "curious about Earth, a planet they had only seen in pictures, and one of them decided",
]
GEN_MODEL, EMB_MODEL, IMG_MODEL = "smollm2-135m-instruct", "all-minilm-l6-v2", "efficientnet-lite0"
NER_MODEL = "en-core-web-sm"
# Sentences with entities in them (people, places, organisations, dates, money), of a few lengths.
NER_TEXTS = [f"In {1990 + i % 30}, Angela Merkel met Tim Cook of Apple in Paris to discuss a ${i + 1} billion deal."
             if i % 2 else f"Sentence number {i} is about Ada Lovelace, London and the weather in spring."
             for i in range(64)]
DET_MODEL = "yolov3-tiny"
SENTIMENT_MODEL, FACE_MODELS = "minilm-sentiment", ("mtcnn", "dlib-face-recognition")
# Short reviews, as a sentiment service gets them.
REVIEWS = [f"Order {i}: {'the staff were friendly and the food was great' if i % 2 else 'it arrived late and broken'}."
           for i in range(64)]


@dataclass
class Row:
    task: str
    setup: str
    rate: float  # items/s (tokens/s for generation)
    unit: str
    p50_ms: float | None = None
    p95_ms: float | None = None
    ttft_ms: float | None = None
    vs_limit: float | None = None
    vs_peer: float | None = None
    itl_p50_ms: float | None = None  # streamed generation: time between text chunks
    itl_p95_ms: float | None = None
    spread: tuple[float, float] | None = None  # min-max of `rate` over the repeats (median in `rate`)
    limit_spread: tuple[float, float] | None = None  # min-max of the per-repeat ratios (median in vs_limit)
    peer_spread: tuple[float, float] | None = None
    client_cpu: float | None = None  # share of the machine's CPU the load generator (this process) used


# -- the machine: was it quiet while a section ran?

BUSY_OTHERS = 0.10  # other processes' share of the machine's CPU above this means they competed with us
BUSY_STEAL = 0.03  # a share of CPU time stolen by the hypervisor above this skews every figure


@dataclass
class Machine:
    """The load average and the CPU counters (/proc/stat) at one moment, and our own CPU so far.

    The load average cannot tell whether the machine was quiet: a section that keeps both cores
    busy with its own server and clients drives it to ~2 by itself. What can is the CPU that other
    processes used: the machine's busy time less this benchmark's and its children's.
    """

    load1: float
    busy: int  # clock ticks all CPUs spent working (user .. softirq)
    steal: int
    total: int
    own: int  # clock ticks used by this process and every process it started

    @classmethod
    def now(cls) -> Machine:
        load1 = float(Path("/proc/loadavg").read_text().split()[0])
        # cpu  user nice system idle iowait irq softirq steal guest guest_nice
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
        return cls(load1, sum(values[:3]) + sum(values[5:7]), values[7], sum(values), own_cpu_ticks())


def own_cpu_ticks() -> int:
    """CPU ticks used by this process and its descendants: live ones from /proc, reaped ones from os.times().

    A reaped grandchild (a gunicorn worker) is in its parent's cutime/cstime, so it counts either way.
    """
    times = os.times()
    ticks = round((times.user + times.system + times.children_user + times.children_system)
                  * os.sysconf("SC_CLK_TCK"))
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:  # after the ")" that ends the command name: state, ppid, ... utime (11), stime, cutime, cstime
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # it exited meanwhile
                continue
            stats[int(entry.name)] = (int(fields[1]), sum(int(v) for v in fields[11:15]))
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    pending = list(children.get(os.getpid(), []))
    while pending:
        pid = pending.pop()
        ticks += stats[pid][1]
        pending += children.get(pid, [])
    return ticks


def cpu_model() -> str:
    """The CPU's model name as lscpu gives it, for the line beside each figure."""
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no lscpu)"
    names = [line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")]
    return names[0] if names else "unknown"


def machine_report(section: str, before: Machine, after: Machine, seconds: float) -> tuple[str, bool]:
    """One line on the machine during `section`, and whether it was too busy for its figures to stand alone."""
    ticks = max(1, after.total - before.total)
    steal = (after.steal - before.steal) / ticks
    used = (after.busy - before.busy) / ticks
    others = max(0.0, (after.busy - before.busy) - (after.own - before.own)) / ticks
    busy = others > BUSY_OTHERS or steal > BUSY_STEAL
    line = (f"{section}: {seconds:.0f}s, load average {before.load1:.2f} -> {after.load1:.2f}, "
            f"CPU used {used:.0%} (other processes {others:.0%}), steal {steal:.1%}")
    if busy:
        line += (f"  WARNING: busy machine (other processes > {BUSY_OTHERS:.0%} of the CPU or steal > "
                 f"{BUSY_STEAL:.0%}); these are not idle-machine figures")
    return line, busy


def median_row(samples: list[Row]) -> Row:
    """The repeat with the median rate, carrying the min-max of all repeats' rates."""
    ordered = sorted(samples, key=lambda r: r.rate)
    row = ordered[(len(ordered) - 1) // 2]
    row.spread = (ordered[0].rate, ordered[-1].rate) if len(ordered) > 1 else None
    return row


def median_ratio(values: list[float]) -> tuple[float, tuple[float, float] | None]:
    """The median of per-repeat ratios (each taken between figures measured back to back) and their min-max."""
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2], (ordered[0], ordered[-1]) if len(ordered) > 1 else None


def percentile_ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def drive(concurrency: int, total: int, call: Callable[[int], Any]) -> tuple[float, list[float], list[Any]]:
    """Run `total` calls on `concurrency` threads; returns wall time, latencies and results."""
    def timed(i: int) -> tuple[float, Any]:
        start = time.perf_counter()
        out = call(i)
        return time.perf_counter() - start, out

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(timed, range(total)))
    return time.perf_counter() - start, [r[0] for r in results], [r[1] for r in results]


# -- in-process references: the same adapters the server runs, called directly

def load(name: str, *, trace: bool | None = None) -> Any:
    """The model as the server loads it; trace=False gives the eager forward pass a user calling
    the model by hand runs (the server traces encoders on CPU, models/traced.py)."""
    from maas_server.runtime.assembly import load_configured_model

    config = load_settings()
    model_config = config.model(name)
    if trace is not None:
        model_config = model_config.model_copy(update={"trace": trace})
    return load_configured_model(model_config, config)


def inprocess_embeddings(model: Any, batch: int, rounds: int) -> float:
    start = time.perf_counter()
    for _ in range(rounds):
        model.embed([model.prepare_text(s) for s in SENTENCES[:batch]])
    return batch * rounds / (time.perf_counter() - start)


def inprocess_entities(model: Any, batch: int, rounds: int) -> float:
    from maas_server.models.entities_io import EntityItem

    start = time.perf_counter()
    for _ in range(rounds):
        model.extract([model.prepare(EntityItem(text)) for text in NER_TEXTS[:batch]])
    return batch * rounds / (time.perf_counter() - start)


def inprocess_generation(model: Any, batch: int, tokens: int) -> float:
    """A static batch: `batch` copies of the prompt decoded together (left-padded), greedy."""
    from maas_server.models.generation_io import GenerationRequest

    request = GenerationRequest(prompt=PROMPT, max_tokens=tokens, temperature=0, n=batch)
    start = time.perf_counter()
    result = model.run([model.prepare(request)])[0]
    return sum(c.completion_tokens for c in result.choices) / (time.perf_counter() - start)


def inprocess_images(model: Any, batch: int, rounds: int, jpeg: bytes) -> float:
    """From JPEG bytes to labels, as an in-process user with image files does (the server decodes too)."""
    from PIL import Image

    start = time.perf_counter()
    for _ in range(rounds):
        model.classify([model.prepare(Image.open(io.BytesIO(jpeg))) for _ in range(batch)])
    return batch * rounds / (time.perf_counter() - start)


def inprocess_detection(model: Any, batch: int, rounds: int, jpeg: bytes) -> float:
    """From JPEG bytes to boxes, one forward pass per batch (the server decodes too)."""
    from PIL import Image

    from maas_server.models.image_io import DetectionQuery

    start = time.perf_counter()
    for _ in range(rounds):
        model.run([model.prepare(DetectionQuery(Image.open(io.BytesIO(jpeg)))) for _ in range(batch)])
    return batch * rounds / (time.perf_counter() - start)


def inprocess_rate(model: Any, method: Any, inputs: list[Any], batch: int, rounds: int) -> float:
    """Items per second through one of the adapter's batch methods (what the server's runner calls)."""
    call = model.batch_methods()[method]
    start = time.perf_counter()
    for _ in range(rounds):
        call.run([call.prepare(x) for x in inputs[:batch]])
    return batch * rounds / (time.perf_counter() - start)


# -- load over HTTP

def stream_completion(url: str, body: dict[str, Any]) -> tuple[int, float, list[float]]:
    """One streamed completion: (completion tokens, seconds to the first text, seconds between text chunks)."""
    start, count, arrivals = time.perf_counter(), 0, []
    body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    with requests.post(f"{url}/v1/completions", json=body, stream=True, timeout=900) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith(b"data: {"):
                continue
            chunk = json.loads(line[6:])
            if chunk.get("choices") and chunk["choices"][0].get("text"):
                arrivals.append(time.perf_counter())
            if chunk.get("usage"):
                count = chunk["usage"]["completion_tokens"]
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    return count, arrivals[0] - start if arrivals else 0.0, gaps


def generation_load(url: str, model: str, concurrency: int, total: int, bodies: Callable[[int], dict[str, Any]],
                    label: str) -> Row:
    """Closed-loop streaming clients; inter-token figures pool the gaps between text chunks of every stream."""
    wall, latencies, out = drive(concurrency, total, lambda i: stream_completion(url, {"model": model, **bodies(i)}))
    gaps = [gap for _, _, stream_gaps in out for gap in stream_gaps]
    return Row("generation", label, sum(c for c, _, _ in out) / wall, "tokens/s", percentile_ms(latencies, .5),
               percentile_ms(latencies, .95), statistics.median(t for _, t, _ in out) * 1000,
               itl_p50_ms=percentile_ms(gaps, .5) if gaps else None,
               itl_p95_ms=percentile_ms(gaps, .95) if gaps else None)


def fixed_body(tokens: int) -> Callable[[int], dict[str, Any]]:
    return lambda i: {"prompt": PROMPT, "max_tokens": tokens, "temperature": 0}


def mixed_body(seed: int) -> Callable[[int], dict[str, Any]]:
    """max_tokens drawn between 16 and 128 and prompts of different lengths, the same for every server."""
    rng = random.Random(seed)
    draws = [(rng.choice(MIXED_PROMPTS), rng.randint(16, 128)) for _ in range(1000)]
    return lambda i: {"prompt": draws[i][0], "max_tokens": draws[i][1], "temperature": 0}


class KeepAliveClient:
    """A lean load generator: one persistent http.client connection per thread.

    `requests` costs about 1 ms of CPU per call; on a 2-core machine that the server shares with
    the load generator, that would be charged to the server. A real client fleet runs elsewhere.
    """

    def __init__(self, url: str) -> None:
        self.host, self.port = url.removeprefix("http://").split(":")
        self.local = threading.local()

    def post_json(self, path: str, payload: bytes) -> bytes:
        try:
            status, body = self._post(path, payload)
        except (http.client.HTTPException, ConnectionError):
            self.local.conn = None  # the server closed an idle kept-alive connection: reconnect once
            status, body = self._post(path, payload)
        if status != 200:
            raise RuntimeError(f"{path} answered {status}: {body[:200]!r}")
        return body

    def _post(self, path: str, payload: bytes) -> tuple[int, bytes]:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection(self.host, int(self.port), timeout=120)
        conn.request("POST", path, body=payload, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()


def embeddings_load(url: str, concurrency: int, total: int) -> Row:
    client = KeepAliveClient(url)
    payloads = [json.dumps({"input": s}).encode() for s in SENTENCES]
    cpu = client_cpu_meter()
    wall, latencies, _ = drive(concurrency, total, lambda i: client.post_json("/v1/embeddings", payloads[i % 64]))
    return Row("embeddings", f"server c={concurrency}", total / wall, "texts/s", percentile_ms(latencies, .5),
               percentile_ms(latencies, .95), client_cpu=cpu(wall))


def client_cpu_meter() -> Callable[[float], float]:
    """Call before a load; the returned function, given the load's wall time, gives the share of the
    machine's CPU this process (the load generator: it runs nothing else meanwhile) used."""
    start = os.times()
    cores = os.cpu_count() or 1

    def share(wall: float) -> float:
        end = os.times()
        return (end.user - start.user + end.system - start.system) / (wall * cores)

    return share


def entities_load(url: str, concurrency: int, total: int) -> Row:
    client = KeepAliveClient(url)
    payloads = [json.dumps({"input": text}).encode() for text in NER_TEXTS]
    wall, latencies, _ = drive(concurrency, total, lambda i: client.post_json("/v1/entities", payloads[i % 64]))
    return Row("entities", f"server c={concurrency}", total / wall, "texts/s", percentile_ms(latencies, .5),
               percentile_ms(latencies, .95))


def images_load(url: str, concurrency: int, total: int, jpeg: bytes) -> Row:
    client = KeepAliveClient(url)
    payload = json.dumps({"image": base64.b64encode(jpeg).decode(), "top_k": 1}).encode()
    cpu = client_cpu_meter()
    wall, latencies, _ = drive(concurrency, total, lambda i: client.post_json("/v1/classify/image", payload))
    return Row("image", f"server c={concurrency}", total / wall, "images/s", percentile_ms(latencies, .5),
               percentile_ms(latencies, .95), client_cpu=cpu(wall))


def detection_load(url: str, concurrency: int, total: int, jpeg: bytes) -> Row:
    client = KeepAliveClient(url)
    payload = json.dumps({"image": base64.b64encode(jpeg).decode()}).encode()
    wall, latencies, _ = drive(concurrency, total, lambda i: client.post_json("/v1/detect/objects", payload))
    return Row("detection", f"server c={concurrency}", total / wall, "images/s", percentile_ms(latencies, .5),
               percentile_ms(latencies, .95))


def json_load(url: str, task: str, path: str, payloads: list[bytes], concurrency: int, total: int,
              unit: str) -> Row:
    """`total` POSTs of the payloads in turn, `concurrency` at a time, one item per request."""
    client = KeepAliveClient(url)
    wall, latencies, _ = drive(concurrency, total, lambda i: client.post_json(path, payloads[i % len(payloads)]))
    return Row(task, f"server c={concurrency}", total / wall, unit, percentile_ms(latencies, .5),
               percentile_ms(latencies, .95))


def server_rows(task: str, models: list[str], path: str, payloads: list[bytes], unit: str, limit: float,
                totals: dict[int, int]) -> list[Row]:
    """A server with `models` at each concurrency (after a warm-up), each rate as a share of the in-process limit."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp, ServerProcess(config_with(models, Path(tmp))) as url:
        json_load(url, task, path, payloads, 4, 8, unit)  # warm the HTTP path and the model
        for concurrency, total in totals.items():
            row = json_load(url, task, path, payloads, concurrency, total, unit)
            row.vs_limit = row.rate / limit
            rows.append(row)
    return rows


# -- servers

def config_with(models: list[str], tmp: Path, *, base: str | None = None, **model_settings: Any) -> str:
    """The default config (or `base`, a config text) restricted to `models`, with overrides; returns its path."""
    text = default_config_text() if base is None else base
    head, *blocks = text.split("[[models]]")
    kept = [b for b in blocks if any(f'name = "{m}"' in b for m in models)]
    extra = "".join(f"{key} = {json.dumps(value)}\n" for key, value in model_settings.items())
    path = tmp / f"{'-'.join(models)}.toml"
    path.write_text(head + "".join(f"[[models]]{b.rstrip()}\n{extra}\n" for b in kept))
    return str(path)


@contextmanager
def peer_server(model_dir: str) -> Iterator[str]:
    """`transformers serve --continuous-batching` on the same model folder, on a free port."""
    port = free_port()
    log = open(Path(tempfile.mkdtemp(prefix="peer-")) / "peer.log", "wb")  # noqa: SIM115 - closed in finally
    process = subprocess.Popen([str(Path(sys.executable).parent / "transformers"), "serve", "--continuous-batching",
                                "--device", "cpu", "--host", "127.0.0.1", "--port", str(port), model_dir],
                               stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"peer exited with {process.returncode}; see {log.name}")
            try:
                if requests.get(f"{url}/health", timeout=2).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.5)
        for attempt in range(3):  # its first continuous-batching stream has been seen to end early, once
            try:
                stream_completion(url, {"model": model_dir, **fixed_body(4)(0)})  # warm-up
                break
            except requests.RequestException:
                if attempt == 2:
                    raise
        yield url
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def converted_model_dir() -> str:
    """The safetensors folder the server converted the GGUF model into (the peer loads the same one)."""
    from maas_server.models.sources import resolve_source

    config = load_settings()
    gguf = Path(resolve_source(config.model(GEN_MODEL).source))
    folders = sorted((config.cache_dir / "gguf").glob(f"{gguf.stem}-*"), key=lambda p: p.stat().st_mtime)
    if not folders:
        raise RuntimeError("no converted model folder yet; start the server once (make serve) to create it")
    return str(folders[-1])


# -- the sections

def bench_generation(quick: bool, peer: bool, repeats: int) -> list[Row]:
    """Streamed generation: in-process, the server and the peer alternate level by level, `repeats` times.

    All three stay up for the whole section, so each ratio is taken between figures measured back to
    back in the same repeat (server c=16 right after the in-process batch of 16, the peer right after
    the server); the table shows the median repeat and the spread of rates and ratios.
    """
    model = load(GEN_MODEL)
    inprocess_generation(model, 16, 4)  # warm
    with tempfile.TemporaryDirectory() as tmp, ServerProcess(config_with([GEN_MODEL], Path(tmp))) as url, \
            _maybe_peer(peer) as peer_target:
        generation_load(url, GEN_MODEL, 4, 4, fixed_body(8), "warm-up")
        targets = [("server", GEN_MODEL, url)] + ([("peer", *peer_target)] if peer_target else [])
        samples = [generation_repeat(model, targets, quick) for _ in range(repeats)]
    return aggregate(samples)


@contextmanager
def _maybe_peer(wanted: bool) -> Iterator[tuple[str, str] | None]:
    """(model name, url) of the peer server when wanted, else None."""
    if not wanted:
        yield None
        return
    model_dir = converted_model_dir()
    with peer_server(model_dir) as url:
        yield model_dir, url


def generation_repeat(model: Any, targets: list[tuple[str, str, str]], quick: bool) -> dict[str, Row]:
    """One repeat of every generation level; each ratio against the reference measured just before it."""
    tokens, rounds, mixed_total = 64, 1 if quick else 2, 16 if quick else 32
    got = {"in-process batch 1": Row("generation", "in-process batch 1", inprocess_generation(model, 1, tokens),
                                     "tokens/s")}
    for c in (1, 4, 16):
        if c == 16:  # the limit, measured right before the servers' c=16
            got["in-process static batch 16"] = Row("generation", "in-process static batch 16",
                                                    inprocess_generation(model, 16, tokens), "tokens/s")
        for who, name, url in targets:
            if who == "server" or c != 4:
                got[f"{who} c={c}"] = generation_load(url, name, c, c * rounds if c > 1 else 2, fixed_body(tokens),
                                                      f"{who} c={c}")
    server = targets[0][2]
    got["server mixed c=1"] = generation_load(server, GEN_MODEL, 1, 4 if quick else 8, mixed_body(1),
                                              "server mixed c=1")
    for who, name, url in targets:
        got[f"{who} mixed c=16"] = generation_load(url, name, 16, mixed_total, mixed_body(2), f"{who} mixed c=16")
    limit = got["in-process static batch 16"].rate
    for setup, row in got.items():
        if setup.startswith(("server c=", "peer c=")):
            row.vs_limit = row.rate / limit
        if setup.startswith("server") and (peer_row := got.get(setup.replace("server", "peer"))):
            row.vs_peer = row.rate / peer_row.rate
    got["server mixed c=16"].vs_limit = got["server mixed c=16"].rate / got["server mixed c=1"].rate  # own c=1
    return dict(sorted(got.items(), key=lambda kv: (not kv[0].startswith("in-process"), kv[0].startswith("peer"))))


def aggregate(repeats: list[dict[str, Row]]) -> list[Row]:
    """One row per setup: the median repeat's figures, with the median and min-max of each per-repeat ratio."""
    rows = []
    for setup in repeats[0]:
        ratios = {attr: [v for r in repeats if (v := getattr(r[setup], attr)) is not None]
                  for attr in ("vs_limit", "vs_peer")}
        row = median_row([r[setup] for r in repeats])
        for attr, spread in (("vs_limit", "limit_spread"), ("vs_peer", "peer_spread")):
            if ratios[attr]:
                median, extent = median_ratio(ratios[attr])
                setattr(row, attr, median)
                setattr(row, spread, extent)
        rows.append(row)
    return rows


# The CLI with the step timers on: set before gunicorn forks, so every worker has them (ops/steptimes.py).
PROFILED_SERVE = ("import sys; from maas_server.ops import steptimes; steptimes.enabled = True; "
                  "from maas_server.cli import main; sys.exit(main(sys.argv[1:]))")
STEP_PHASES = {  # phase -> what it covers, in the order of a step
    "runner.join": "joins: prefill of new requests + merge into the running cache (others wait)",
    "model.prefill": "  of which the prefill forward pass",
    "model.merge": "  of which padding and concatenating the KV caches",
    "model.mask": "attention mask growth (torch.cat per step)",
    "model.forward": "decode forward pass (includes DynamicCache's torch.cat per layer)",
    "model.sample": "sampling (finite check, grammar mask, per-request argmax/multinomial)",
    "model.detokenize": "detokenize, stop strings, building TextDelta events",
    "model.retire": "dropping finished rows from the cache",
    "runner.deliver": "handing events to the request threads' queues",
    "wire.sse_encode": "request threads: JSON-encoding SSE chunks",
    "wire.write": "request threads: socket writes",
}


def step_times(log_text: str) -> dict[str, dict[str, float]]:
    """The last cumulative step-time summary the server logged (the runner logs one when a batch drains)."""
    import ast

    lines = [line for line in log_text.splitlines() if "step times {" in line]
    if not lines:
        raise RuntimeError("the server logged no step times; is ops.steptimes switched on?")
    text = lines[-1]
    message = json.loads(text)["message"] if text.startswith("{") else text
    return ast.literal_eval(message[message.index("{"):])  # type: ignore[no-any-return]


def bench_profile(quick: bool, repeats: int, py_spy: str | None) -> list[Row]:
    """Where a c=16 streaming run's time goes: the server's per-phase timers, totalled over `repeats` loads.

    Prints a table of milliseconds per decode step and the share of the wall time; with `py_spy`
    (a path), py-spy samples the worker during the first load (--gil: only the thread holding the GIL).
    """
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(config_with([GEN_MODEL], Path(tmp)), command=[sys.executable, "-c", PROFILED_SERVE])
        with server as url:
            generation_load(url, GEN_MODEL, 4, 4, fixed_body(8), "warm-up")
            generation_load(url, GEN_MODEL, 1, 1, fixed_body(1), "flush")  # its drain logs the warm-up totals
            time.sleep(0.5)
            before = step_times(server.log_path.read_text())
            wall = 0.0
            for i in range(repeats):
                spy = _py_spy(server.worker_pids()[0], py_spy) if py_spy and i == 0 else None
                row = generation_load(url, GEN_MODEL, 16, 16 if quick else 32, fixed_body(64), "server c=16 profiled")
                if spy is not None:
                    spy.wait(120)
                wall += 32 * 64 / row.rate if not quick else 16 * 64 / row.rate
                rows.append(row)
            generation_load(url, GEN_MODEL, 1, 1, fixed_body(1), "flush")
            time.sleep(0.5)
            after = step_times(server.log_path.read_text())
    print_step_times(before, after, wall)
    return [median_row(rows)]


def _py_spy(pid: int, out: str) -> subprocess.Popen[bytes]:
    spy = str(Path(sys.executable).parent / "py-spy")
    return subprocess.Popen([spy, "record", "--gil", "--pid", str(pid), "--duration", "15", "--rate", "100",
                             "--format", "raw", "--output", out], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def print_step_times(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]], wall_s: float) -> None:
    """Per phase: calls, total ms, ms per decode step and the share of the loads' wall time."""
    delta = {name: {key: value - before.get(name, {}).get(key, 0) for key, value in totals.items()}
             for name, totals in after.items()}
    steps = delta.get("runner.step", {}).get("calls", 0) or 1
    print(f"\nstep times at c=16 ({steps:.0f} decode steps, {wall_s:.1f}s of load):")
    print("| phase | what | calls | total ms | ms per step | share of wall |")
    print("|---|---|---|---|---|---|")
    for name in [*STEP_PHASES, "runner.step"]:
        if name in delta:
            d = delta[name]
            what = STEP_PHASES.get(name, "the whole decode step (forward .. retire)")
            print(f"| {name} | {what} | {d['calls']:.0f} | {d['ms']:.0f} | {d['ms'] / steps:.2f} | "
                  f"{d['ms'] / 1000 / wall_s:.1%} |")


def bench_embeddings(quick: bool, repeats: int) -> list[Row]:
    """In-process and the server alternate, `repeats` times: each ratio is between figures measured back to back."""
    scale = 1 if quick else 3
    model, eager = load(EMB_MODEL), load(EMB_MODEL, trace=False)
    inprocess_embeddings(model, 32, 2)  # warm
    inprocess_embeddings(eager, 32, 2)
    with tempfile.TemporaryDirectory() as tmp, ServerProcess(config_with([EMB_MODEL], Path(tmp))) as url:
        embeddings_load(url, 4, 32)  # warm the HTTP path
        samples = [embeddings_repeat(model, eager, url, scale) for _ in range(repeats)]
    return aggregate(samples)


def embeddings_repeat(model: Any, eager: Any, url: str, scale: int) -> dict[str, Row]:
    """The limit is the server's own adapter in-process; `eager` (vs peer) is the model called by hand."""
    inprocess_ms, server_ms = paired_embedding_latency_ms(model, url, 60 * scale)
    got = {"in-process batch 1": Row("embeddings", "in-process batch 1", 1000 / inprocess_ms, "texts/s", inprocess_ms),
           "server c=1 p50 overhead": Row("embeddings", "server c=1 p50 overhead", server_ms - inprocess_ms, "ms",
                                          server_ms)}
    for c in (4, 16, 32, 64):
        if c == 32:  # the limit, measured right before the server's c=32
            got["in-process batch 32"] = Row("embeddings", "in-process batch 32",
                                             inprocess_embeddings(model, 32, 4 * scale), "texts/s")
            got["in-process eager batch 32"] = Row("embeddings", "in-process eager batch 32 (by hand)",
                                                   inprocess_embeddings(eager, 32, 4 * scale), "texts/s")
        got[f"server c={c}"] = embeddings_load(url, c, 64 * scale)
        if c >= 32:
            got[f"server c={c}"].vs_limit = got[f"server c={c}"].rate / got["in-process batch 32"].rate
            got[f"server c={c}"].vs_peer = got[f"server c={c}"].rate / got["in-process eager batch 32"].rate
    return got


def paired_embedding_latency_ms(model: Any, url: str, pairs: int) -> tuple[float, float]:
    """Medians of one in-process call and one server call (c=1) alternating, so the difference is back to back."""
    client = KeepAliveClient(url)
    inprocess, server = [], []
    for i in range(pairs):
        sentence = SENTENCES[i % len(SENTENCES)]
        start = time.perf_counter()
        model.embed([model.prepare_text(sentence)])
        inprocess.append(time.perf_counter() - start)
        payload = json.dumps({"input": sentence}).encode()
        start = time.perf_counter()
        client.post_json("/v1/embeddings", payload)
        server.append(time.perf_counter() - start)
    return statistics.median(inprocess) * 1000, statistics.median(server) * 1000


def bench_entities(quick: bool) -> list[Row]:
    """NER (spaCy, CPU): one sentence per request, as embeddings; the limit is in-process batch 32."""
    scale = 1 if quick else 3
    model = load(NER_MODEL)
    inprocess_entities(model, 32, 2)  # warm
    limit = inprocess_entities(model, 32, 4 * scale)
    rows = [Row("entities", "in-process batch 32", limit, "texts/s"),
            Row("entities", "in-process batch 1", inprocess_entities(model, 1, 64 * scale), "texts/s")]
    with tempfile.TemporaryDirectory() as tmp, ServerProcess(config_with([NER_MODEL], Path(tmp))) as url:
        entities_load(url, 4, 32)  # warm the HTTP path
        for c in (1, 16):
            row = entities_load(url, c, 64 * scale)
            row.vs_limit = row.rate / limit
            rows.append(row)
    return rows


def bench_images(quick: bool, repeats: int) -> list[Row]:
    """In-process batches and the server alternate, `repeats` times (the best batch right before the server's c=16)."""
    import skimage.data
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(skimage.data.chelsea()).save(buffer, "JPEG")
    jpeg, rounds = buffer.getvalue(), 1 if quick else 2
    model, eager = load(IMG_MODEL), load(IMG_MODEL, trace=False)
    inprocess_images(model, 4, 1, jpeg)  # warm
    inprocess_images(eager, 4, 1, jpeg)
    with tempfile.TemporaryDirectory() as tmp, ServerProcess(config_with([IMG_MODEL], Path(tmp))) as url:
        images_load(url, 4, 8, jpeg)  # warm
        samples = [images_repeat(model, eager, url, jpeg, rounds) for _ in range(repeats)]
    return aggregate(samples)


def images_repeat(model: Any, eager: Any, url: str, jpeg: bytes, rounds: int) -> dict[str, Row]:
    """The limit is the server's own adapter in-process; `eager` (vs peer) is the model called by hand."""
    got = {}
    for c in (1, 4):
        got[f"server c={c}"] = images_load(url, c, 32 * rounds, jpeg)
    by_batch = {b: inprocess_images(model, b, max(1, rounds * 32 // b), jpeg) for b in (1, 2, 4, 8, 16)}
    best = max(by_batch, key=by_batch.__getitem__)
    for b, rate in by_batch.items():
        got[f"in-process batch {b}"] = Row("image", f"in-process batch {b}", rate, "images/s")
    got["in-process best batch"] = Row("image", f"in-process best batch (this repeat: {best})", by_batch[best],
                                       "images/s")
    by_hand = max(inprocess_images(eager, b, max(1, rounds * 32 // b), jpeg) for b in (1, 4))
    got["in-process eager best"] = Row("image", "in-process eager, best of batch 1 and 4 (by hand)", by_hand,
                                       "images/s")
    got["server c=16"] = images_load(url, 16, 32 * rounds, jpeg)
    for c in (1, 4, 16):
        got[f"server c={c}"].vs_limit = got[f"server c={c}"].rate / by_batch[best]
        got[f"server c={c}"].vs_peer = got[f"server c={c}"].rate / by_hand
    return dict(sorted(got.items(), key=lambda kv: not kv[0].startswith("in-process")))


def collage_jpeg() -> bytes:
    """Four of scikit-image's pictures on a 900x600 sheet (the integration test's collage): four objects to find."""
    import skimage.data
    from PIL import Image

    sheet = Image.new("RGB", (900, 600), "white")
    pictures = [skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.stereo_motorcycle()[0],
                skimage.data.coffee()]
    for i, array in enumerate(pictures):
        picture = Image.fromarray(array)
        picture.thumbnail((450, 300))
        sheet.paste(picture, ((i % 2) * 450, (i // 2) * 300))
    buffer = io.BytesIO()
    sheet.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def bench_detection(quick: bool) -> list[Row]:
    jpeg = collage_jpeg()
    rounds = 1 if quick else 2
    model = load(DET_MODEL)
    inprocess_detection(model, 2, 1, jpeg)  # warm
    by_batch = {b: inprocess_detection(model, b, max(1, rounds * 8 // b), jpeg) for b in (1, 4, 8)}
    best = max(by_batch, key=by_batch.__getitem__)
    limit = by_batch[best]
    rows = [Row("detection", f"in-process batch {b}" + (" (best)" if b == best else ""), r, "images/s")
            for b, r in by_batch.items()]
    with tempfile.TemporaryDirectory() as tmp, ServerProcess(config_with([DET_MODEL], Path(tmp))) as url:
        detection_load(url, 4, 4, jpeg)  # warm
        for c in (1, 16):
            row = detection_load(url, c, (16 if c > 1 else 4) * rounds, jpeg)
            row.vs_limit = row.rate / limit
            rows.append(row)
    return rows


def bench_sentiment(quick: bool) -> list[Row]:
    """The sentiment head's model (MiniLM plus a linear head): one review per request."""
    from maas_server.models.text_io import CLASSIFY_TEXT, TextItem

    scale = 1 if quick else 3
    model, items = load(SENTIMENT_MODEL), [TextItem(text) for text in REVIEWS]
    inprocess_rate(model, CLASSIFY_TEXT, items, 32, 2)  # warm
    limit = inprocess_rate(model, CLASSIFY_TEXT, items, 32, 4 * scale)
    rows = [Row("sentiment", "in-process batch 32", limit, "texts/s"),
            Row("sentiment", "in-process batch 1", inprocess_rate(model, CLASSIFY_TEXT, items, 1, 64 * scale),
                "texts/s")]
    payloads = [json.dumps({"model": SENTIMENT_MODEL, "input": text}).encode() for text in REVIEWS]
    return rows + server_rows("sentiment", [SENTIMENT_MODEL], "/v1/classify/text", payloads, "texts/s", limit,
                              {1: 64 * scale, 16: 128 * scale})


def bench_faces(quick: bool) -> list[Row]:
    """Face detection (MTCNN) and face embeddings (MTCNN, then dlib) on the astronaut photo (one face, 512x512)."""
    import skimage.data
    from PIL import Image

    from maas_server.models.image_io import DETECT_FACES, EMBED_FACES, DetectionQuery

    buffer = io.BytesIO()
    Image.fromarray(skimage.data.astronaut()).save(buffer, "JPEG", quality=90)
    jpeg, rounds = buffer.getvalue(), 1 if quick else 2
    payloads = [json.dumps({"image": base64.b64encode(jpeg).decode()}).encode()]
    rows: list[Row] = []
    for task, name, method, path in (("face detection", FACE_MODELS[0], DETECT_FACES, "/v1/detect/faces"),
                                     ("face embeddings", FACE_MODELS[1], EMBED_FACES, "/v1/faces/embeddings")):
        model = load(name)
        queries = [DetectionQuery(Image.open(io.BytesIO(jpeg))) for _ in range(4)]
        inprocess_rate(model, method, queries, 1, 1)  # warm
        by_batch = {b: inprocess_rate(model, method, queries, b, max(1, rounds * 8 // b)) for b in (1, 4)}
        best = max(by_batch, key=by_batch.__getitem__)
        rows += [Row(task, f"in-process batch {b}" + (" (best)" if b == best else ""), r, "images/s")
                 for b, r in by_batch.items()]
        rows += server_rows(task, [name], path, payloads, "images/s", by_batch[best],
                            {1: 8 * rounds, 16: 32 * rounds})
    return rows


SPEECH_MODEL = "whisper-tiny.en"
LONG_CLIP = Path(__file__).resolve().parents[1] / "tests" / "data" / "speech" / "long.ogg"  # 73 s, four voices


def _audio_seconds(path: Path) -> float:
    import av

    with av.open(str(path)) as container:
        return float(container.duration or 0) / 1e6  # microseconds


def bench_speech(quick: bool) -> list[Row]:
    """Transcription of a 73 s clip: real-time factor (seconds of work per second of audio, lower is better).

    In-process is what a user would write by hand with the same model folder: faster-whisper's
    WhisperModel (int8 on CPU, beam 5, its Silero VAD), one file at a time. The server decodes,
    chunks on silence and batches the chunks of concurrent files; "vs in-process" is
    in-process RTF / server RTF (above 1: the server is faster).
    """
    from faster_whisper import WhisperModel

    from maas_server.models.sources import resolve_source

    seconds, rounds = _audio_seconds(LONG_CLIP), 1 if quick else 2
    config = load_settings().model(SPEECH_MODEL)
    assert config is not None
    whisper = WhisperModel(resolve_source(config.source), device="cpu", compute_type="int8")
    list(whisper.transcribe(str(LONG_CLIP), beam_size=5, vad_filter=True)[0])  # warm
    start = time.perf_counter()
    for _ in range(rounds):
        list(whisper.transcribe(str(LONG_CLIP), beam_size=5, vad_filter=True)[0])  # segments are lazy
    inprocess_rtf = (time.perf_counter() - start) / rounds / seconds
    del whisper
    rows = [Row("speech", f"in-process faster-whisper, one file (RTF {inprocess_rtf:.3f})", 1 / inprocess_rtf,
                "s audio/s")]
    audio = LONG_CLIP.read_bytes()

    def transcribe(url: str) -> None:
        r = requests.post(f"{url}/v1/audio/transcriptions", files={"file": ("long.ogg", audio, "audio/ogg")},
                          data={"model": SPEECH_MODEL}, timeout=600)
        r.raise_for_status()

    with tempfile.TemporaryDirectory() as tmp, ServerProcess(config_with([SPEECH_MODEL], Path(tmp))) as url:
        transcribe(url)  # warm
        for concurrency in (1, 4):
            total = concurrency * rounds
            wall, latencies, _ = drive(concurrency, total, lambda i: transcribe(url))
            rtf = wall / (total * seconds)
            rows.append(Row("speech", f"server c={concurrency} (RTF {rtf:.3f})", 1 / rtf, "s audio/s",
                            percentile_ms(latencies, .5), percentile_ms(latencies, .95),
                            vs_limit=inprocess_rtf / rtf))
    return rows


STORY_SCHEMA = {"type": "object", "properties": {"story": {"type": "string", "minLength": 2000}}, "required": ["story"],
                "additionalProperties": False}


def bench_structured(quick: bool) -> list[Row]:
    """Generation at c=16 with and without a JSON schema, alternating in one server: what the grammar costs.

    Both write 64 tokens (the story must be longer: the same work for both), greedy; the ratio is the median
    constrained rate over the median plain rate of the same rounds.
    """
    rounds = 1 if quick else 3
    constrained_body = {**fixed_body(64)(0), "response_format": {
        "type": "json_schema", "json_schema": {"name": "story", "schema": STORY_SCHEMA}}}
    plain, constrained = [], []
    with tempfile.TemporaryDirectory() as tmp, ServerProcess(config_with([GEN_MODEL], Path(tmp))) as url:
        generation_load(url, GEN_MODEL, 4, 4, fixed_body(16), "warm-up")
        for _ in range(rounds):
            plain.append(generation_load(url, GEN_MODEL, 16, 32, fixed_body(64), "server c=16 plain"))
            constrained.append(generation_load(url, GEN_MODEL, 16, 32, lambda i: constrained_body,
                                               "server c=16 json_schema"))
    middle = lambda rows: sorted(rows, key=lambda r: r.rate)[len(rows) // 2]  # noqa: E731
    best_plain, best_constrained = middle(plain), middle(constrained)
    best_constrained.vs_limit = best_constrained.rate / best_plain.rate
    for row in (best_plain, best_constrained):
        row.task = "structured output"
        row.setup += f" (median of {rounds}: " + ", ".join(f"{r.rate:.1f}" for r in
                                                            (plain if row is best_plain else constrained)) + ")"
    return [best_plain, best_constrained]


def bench_overload(quick: bool) -> list[Row]:
    """4 x max_queue clients at once: each answer must be 200 or 503 + Retry-After, none may hang."""
    import maas_client

    max_queue, clients = 4, 16
    with tempfile.TemporaryDirectory() as tmp:
        config = config_with([GEN_MODEL], Path(tmp), max_queue=max_queue, max_batch_size=max_queue)
        config_text = Path(config).read_text().replace("max_inputs = 256", f"max_inputs = {max_queue}")
        Path(config).write_text(config_text)
        with ServerProcess(config) as url:
            body = {"prompt": PROMPT, "max_tokens": 32, "temperature": 0}

            def raw(i: int) -> tuple[int, bool]:
                r = requests.post(f"{url}/v1/completions", json=body, timeout=120)
                return r.status_code, "Retry-After" in r.headers

            wall, latencies, answers = drive(clients, clients, raw)
            ok = sum(1 for status, _ in answers if status == 200)
            busy = sum(1 for status, retry in answers if status == 503 and retry)
            other = len(answers) - ok - busy
            client = maas_client.Client(base_url=url, max_retries=30, timeout=120)
            retried_wall, _, texts = drive(clients, clients, lambda i: client.generate(PROMPT, max_tokens=32,
                                                                                       temperature=0).text)
            retried_ok = sum(1 for t in texts if t)
    print(f"\noverload: {clients} clients at once, max_queue={max_queue}: {ok} answered 200, {busy} answered 503 with "
          f"Retry-After, {other} other (must be 0); slowest answer {max(latencies):.1f}s. With the client's retries: "
          f"{retried_ok}/{clients} succeeded in {retried_wall:.1f}s.")
    return [Row("overload", f"{clients} raw clients: 200 / 503+Retry-After / other = {ok}/{busy}/{other}",
                clients / wall, "requests/s"),
            Row("overload", f"{clients} maas_client (retries): {retried_ok}/{clients} succeeded",
                clients / retried_wall, "requests/s")]


def print_table(rows: list[Row]) -> None:
    """Medians, with the min-max over the repeats in brackets where a figure was repeated."""
    print("\n| task | setup | throughput | p50 ms | p95 ms | TTFT p50 ms | inter-token p50/p95 ms | vs in-process "
          "| vs peer |")
    print("|---|---|---|---|---|---|---|---|---|")
    fmt = lambda v, spec: "" if v is None else format(v, spec)  # noqa: E731

    def ranged(value: float | None, extent: tuple[float, float] | None, spec: str) -> str:
        if value is None or extent is None:
            return fmt(value, spec)
        return f"{value:{spec}} ({extent[0]:{spec}}-{extent[1]:{spec}})"

    def itl(r: Row) -> str:
        return "" if r.itl_p50_ms is None else f"{r.itl_p50_ms:.0f} / {r.itl_p95_ms:.0f}"

    for r in rows:
        print(f"| {r.task} | {r.setup} | {ranged(r.rate, r.spread, '.1f')} {r.unit} | {fmt(r.p50_ms, '.0f')} | "
              f"{fmt(r.p95_ms, '.0f')} | {fmt(r.ttft_ms, '.0f')} | {itl(r)} | "
              f"{ranged(r.vs_limit, r.limit_spread, '.2f')} | {ranged(r.vs_peer, r.peer_spread, '.2f')} |")
    shares = [f"{r.task} {r.setup}: {r.client_cpu:.0%}" for r in rows if r.client_cpu is not None]
    if shares:
        print("\nThe load generator's share of the machine's CPU (it shares the cores with the server):\n"
              + "; ".join(shares))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    parser.add_argument("--only", default="generation,embeddings,images,entities,detection,sentiment,faces,"
                                          "speech,structured,overload",
                        help="comma-separated sections: generation, profile (c=16 step timers, not in the "
                             "default run), embeddings, images, entities, detection, "
                             "sentiment, faces, speech, structured, overload")
    parser.add_argument("--py-spy", metavar="PATH", help="profile: also sample the worker with py-spy --gil into PATH")
    parser.add_argument("--no-peer", action="store_true", help="skip transformers serve (needs fastapi/uvicorn)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="times each generation, embeddings and images level runs, alternating "
                             "server and references (default 3; 1 with --quick)")
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 3)
    sections = set(args.only.split(","))
    benches: dict[str, Callable[[], list[Row]]] = {
        "generation": lambda: bench_generation(args.quick, not args.no_peer, repeats),
        "profile": lambda: bench_profile(args.quick, repeats, args.py_spy),
        "embeddings": lambda: bench_embeddings(args.quick, repeats),
        "images": lambda: bench_images(args.quick, repeats),
        "entities": lambda: bench_entities(args.quick),
        "detection": lambda: bench_detection(args.quick),
        "sentiment": lambda: bench_sentiment(args.quick),
        "faces": lambda: bench_faces(args.quick),
        "speech": lambda: bench_speech(args.quick),
        "structured": lambda: bench_structured(args.quick),
        "overload": lambda: bench_overload(args.quick),
    }
    rows: list[Row] = []
    machine_lines, busy = [], False
    started = time.perf_counter()
    for name, bench in benches.items():
        if name not in sections:
            continue
        before, section_start = Machine.now(), time.perf_counter()
        rows += bench()
        line, was_busy = machine_report(name, before, Machine.now(), time.perf_counter() - section_start)
        print(line, flush=True)
        machine_lines.append(line)
        busy = busy or was_busy
    print_table(rows)
    print(f"\n(whole run: {time.perf_counter() - started:.0f}s; generation, embeddings and images: median of "
          f"{repeats} repeat(s), min-max in brackets; vs in-process for 'server mixed c=16' is vs the server's own "
          f"mixed c=1)")
    print("\nThe machine, section by section:\n" + "\n".join(machine_lines))
    if busy:
        print("WARNING: the machine was busy during at least one section; do not report its figures as idle ones.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
