"""Models on Ray Serve against the same models in the server: the hop's cost, and throughput, in one run.

    .venv/bin/python benchmarks/ray_hop.py            # ~10 min on 2 cores
    .venv/bin/python benchmarks/ray_hop.py --quick    # fewer requests

Starts a local Ray instance in this process, then `maas-server serve --ray-address` it, once per
phase, on the default models (SmolLM2-135M, all-MiniLM-L6-v2):

1. hop: each model twice in one server, on Ray (one replica) and local, both with two torch threads;
   sequential calls (c=1) alternate between the two, so both see the same machine: p50 latency of
   one embedding, and p50 time to the first streamed token (TTFT).
2. throughput: c=16 and c=32, local (the server's torch: two threads), then on Ray with 1 replica
   of 2 threads and 2 replicas of 1 thread each, so the two cores are never oversubscribed.

Ray's CPUs here are logical (4): they decide where replicas may go, not how many threads they
run (a replica's torch gets num_cpus threads). The load generator and the HTTP tier share the two
cores with the replicas, as they would not in a real deployment. Each row says the load average
(`/proc/loadavg`) before and after it: this machine is shared, and a busy one shows there.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from run import PROMPT, SENTENCES, KeepAliveClient, drive, percentile_ms, stream_completion

from maas_server.config import default_config_text
from maas_server.testing import ServerProcess

GEN, EMB = "smollm2-135m-instruct", "all-minilm-l6-v2"
SERVER = {"max_inputs": 256, "max_tokens": 256, "ray_app": "maas-bench"}


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _default_models() -> dict[str, str]:
    _, *blocks = default_config_text().split("[[models]]")
    return {name: block.strip() for block in blocks for name in (GEN, EMB) if f'name = "{name}"' in block}


def write_config(path: Path, models: list[tuple[str, str, dict[str, Any]]]) -> str:
    """Models as (new name, default model, overrides): the default model's table under a new name."""
    defaults = _default_models()
    lines = ["[server]", *(f"{k} = {json.dumps(v)}" for k, v in SERVER.items())]
    for name, base, extra in models:
        table = defaults[base].replace(f'name = "{base}"', f'name = "{name}"')
        lines += ["", "[[models]]", table, *(f"{k} = {_toml(v)}" for k, v in extra.items())]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def on_ray(replicas: int, cpus: float) -> dict[str, Any]:
    return {"backend": "ray", "replicas": replicas, "num_cpus": cpus}


class Phase:
    """One server on one config; the Ray application is removed afterwards, so the next phase starts clean."""

    def __init__(self, name: str, config: str, address: str) -> None:
        self.name, self.config, self.address = name, config, address

    def __enter__(self) -> str:
        self.server = ServerProcess(self.config, ready_timeout=900, extra_args=["--ray-address", self.address])
        return self.server.__enter__()

    def __exit__(self, *exc: Any) -> None:
        from ray import serve

        self.server.stop()
        if serve.status().applications.get(SERVER["ray_app"]):
            serve.delete(SERVER["ray_app"])


def alternate(calls: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Each call `rounds` times, taking turns, so that both see the same moments of a shared machine."""
    seconds: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            seconds[name].append(call())
    return seconds


def timed(call: Callable[[], Any]) -> Callable[[], float]:
    def run() -> float:
        started = time.perf_counter()
        call()
        return time.perf_counter() - started
    return run


def hop(url: str, rounds: int) -> list[str]:
    rows = []
    for label, make in (("embeddings: one text, latency", _embedding_call),
                        ("generation: time to first token", _ttft_call)):
        before = loadavg()
        for model in ("local", "ray"):  # warm both paths first
            for _ in range(3):
                make(url, model)()
        measured = alternate({model: make(url, model) for model in ("local", "ray")}, rounds)
        local, ray = (statistics.median(measured[m]) * 1000 for m in ("local", "ray"))
        rows.append(f"| hop c=1 | {label} | {local:.1f} ms | {ray:.1f} ms | +{ray - local:.1f} ms "
                    f"| {before} / {loadavg()} |")
    return rows


def _embedding_call(url: str, where: str) -> Callable[[], float]:
    client = KeepAliveClient(url)
    payload = json.dumps({"model": f"emb-{where}", "input": SENTENCES[0]}).encode()
    return timed(lambda: client.post_json("/v1/embeddings", payload))


def _ttft_call(url: str, where: str) -> Callable[[], float]:
    body = {"model": f"gen-{where}", "prompt": PROMPT, "max_tokens": 4, "temperature": 0}
    return lambda: stream_completion(url, body)[1]


def retried(call: Callable[[], Any], refusals: list[int]) -> Any:
    """The call, sent again after a 503's Retry-After (as maas_client does); each 503 is counted."""
    while True:
        try:
            return call()
        except (requests.HTTPError, RuntimeError) as exc:
            if " 503" not in str(exc) and "answered 503" not in str(exc):
                raise
            refusals.append(1)
            time.sleep(1.0)


def throughput(url: str, label: str, quick: bool) -> list[str]:
    rows = []
    client = KeepAliveClient(url)
    payloads = [json.dumps({"model": "emb", "input": s}).encode() for s in SENTENCES]
    body = {"model": "gen", "prompt": PROMPT, "max_tokens": 32, "temperature": 0}
    # Warm up at c=4: the runner measures its service rate (a cold model refuses a burst past two batches).
    drive(4, 16, lambda i: client.post_json("/v1/embeddings", payloads[i % 64]))
    drive(4, 8, lambda i: stream_completion(url, body))
    for concurrency in (16, 32):
        before, refusals = loadavg(), []
        total = concurrency * (8 if quick else 24)
        wall, latencies, _ = drive(concurrency, total, lambda i: retried(
            lambda: client.post_json("/v1/embeddings", payloads[i % 64]), refusals))  # noqa: B023 - run at once
        rows.append(f"| {label} | embeddings c={concurrency} | {total / wall:.1f} texts/s "
                    f"| p50 {percentile_ms(latencies, .5):.0f} ms | {len(refusals)} | {before} / {loadavg()} |")
    for concurrency in (16, 32):
        before, refusals = loadavg(), []
        total = concurrency * (1 if quick else 3)
        wall, _, out = drive(concurrency, total, lambda i: retried(lambda: stream_completion(url, body), refusals))  # noqa: B023
        ttft = statistics.median(t for _, t in out) * 1000
        rows.append(f"| {label} | generation c={concurrency} | {sum(c for c, _ in out) / wall:.1f} tokens/s "
                    f"| TTFT p50 {ttft:.0f} ms | {len(refusals)} | {before} / {loadavg()} |")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests: a smoke run")
    args = parser.parse_args()
    import ray

    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, configure_logging=False)
    address = ray.get_runtime_context().gcs_address
    folder = Path(tempfile.mkdtemp(prefix="ray-hop-"))
    rows = ["| phase | what | local | on Ray | hop | load average (before / after) |", "|---|---|---|---|---|---|"]
    hop_config = write_config(folder / "hop.toml", [
        ("emb-local", EMB, {}), ("emb-ray", EMB, on_ray(1, 2)), ("gen-local", GEN, {}), ("gen-ray", GEN, on_ray(1, 2))])
    with Phase("hop", hop_config, address) as url:
        rows += hop(url, 20 if args.quick else 60)
    print("\n".join(rows), flush=True)
    rows = ["", "| phase | what | rate | latency | 503s retried | load average (before / after) |",
            "|---|---|---|---|---|---|"]
    for label, extra in (("local (2 threads)", {}), ("Ray, 1 replica x 2 threads", on_ray(1, 2)),
                         ("Ray, 2 replicas x 1 thread", on_ray(2, 1))):
        config = write_config(folder / f"{len(rows)}.toml", [("emb", EMB, extra), ("gen", GEN, extra)])
        with Phase(label, config, address) as url:
            rows += throughput(url, label, args.quick)
        print("\n".join(rows[-4:]), flush=True)
    print("\n".join(rows))
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
