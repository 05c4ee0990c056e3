"""A mixed-load soak against the real server: does it stay correct, fast and flat over time?

    make soak                                   # 10 minutes
    SOAK_MINUTES=2 make soak                    # shorter
    .venv/bin/python benchmarks/soak.py --minutes 1 --clients 6

Starts `maas-server serve` (default models) on a free loopback port, then runs `--clients` closed-loop
clients for `--minutes`, each picking at random: chat (plain and streamed), completions,
embeddings, zero-shot text labels, an image label, named entities and a transcription of the
short speech clip (tests/data/speech/short.wav, 3 s). It reports errors by route and status,
p50/p99 latency per route for the first and the last minute, and the worker's memory (RSS) over
time, with the load average at start and end. Traffic goes to 127.0.0.1 only, and stops by itself.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import random
import statistics
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from maas_server.testing import ServerProcess

GEN, EMB, IMG = "smollm2-135m-instruct", "all-minilm-l6-v2", "efficientnet-lite0"
NER, ASR = "en-core-web-sm", "whisper-tiny.en"
SPEECH = Path(__file__).resolve().parents[1] / "tests" / "data" / "speech" / "short.wav"


@dataclass
class Sample:
    at: float  # seconds since the soak started
    route: str
    status: int
    ms: float


@dataclass
class Soak:
    url: str
    image_b64: str
    speech: bytes = field(default_factory=SPEECH.read_bytes)
    started: float = field(default_factory=time.monotonic)
    samples: list[Sample] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def call(self, session: requests.Session, rng: random.Random) -> None:
        route, body, stream = self._pick(rng)
        begun = time.monotonic()
        try:
            if route == "/v1/audio/transcriptions":
                response = session.post(f"{self.url}{route}", data=body, files={"file": ("short.wav", self.speech)},
                                        timeout=120)
            else:
                response = session.post(f"{self.url}{route}", json=body, stream=stream, timeout=120)
            status = response.status_code
            if stream and status == 200:
                status = 200 if _stream_ends_well(response) else 599  # a stream cut short or with an error
            else:
                response.content  # noqa: B018 - read it all
            response.close()
        except requests.RequestException:
            status = 598  # no answer at all
        label = route + (" (stream)" if stream else "")
        with self.lock:
            self.samples.append(Sample(begun - self.started, label, status, (time.monotonic() - begun) * 1000))

    def _pick(self, rng: random.Random) -> tuple[str, dict[str, Any], bool]:
        kind = rng.choice(["chat", "chat_stream", "completion", "embed", "embed", "labels", "image", "entities",
                           "speech"])
        if kind.startswith("chat"):
            return "/v1/chat/completions", {"model": GEN, "max_tokens": rng.randint(8, 48), "temperature": 0.7,
                                            "stream": kind == "chat_stream",
                                            "messages": [{"role": "user", "content": "Name a fruit and say why."}]}, \
                kind == "chat_stream"
        if kind == "completion":
            return "/v1/completions", {"model": GEN, "prompt": "The weather today is", "max_tokens": 16}, False
        if kind == "embed":
            texts = [f"text {rng.random()} about markets" for _ in range(rng.randint(1, 16))]
            return "/v1/embeddings", {"model": EMB, "input": texts}, False
        if kind == "labels":
            return "/v1/classify/text", {"model": EMB, "input": "I love this phone", "labels": ["good", "bad"]}, False
        if kind == "entities":
            return "/v1/entities", {"model": NER, "input": "Angela Merkel visited Paris in May 2024."}, False
        if kind == "speech":
            return "/v1/audio/transcriptions", {"model": ASR}, False
        return "/v1/classify/image", {"model": IMG, "image": self.image_b64}, False


def _stream_ends_well(response: requests.Response) -> bool:
    last = b""
    for line in response.iter_lines():
        if line.startswith(b"data: "):
            if b'"error"' in line[:20]:
                return False
            last = line
    return last == b"data: [DONE]"


def _worker_pid(master: int) -> int | None:
    children = Path(f"/proc/{master}/task/{master}/children")
    pids = children.read_text().split() if children.exists() else []
    return int(pids[0]) if pids else None


def _rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def _image_b64() -> str:
    from PIL import Image
    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(data.chelsea()).save(buffer, format="JPEG", quality=90)
    return base64.b64encode(buffer.getvalue()).decode()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _report(soak: Soak, memory: list[tuple[float, float | None]], minutes: float, load: tuple[str, str]) -> str:
    lines = [f"soak: {minutes:g} min, {len(soak.samples)} requests, load average {load[0]} at start, {load[1]} at end"]
    errors: dict[tuple[str, int], int] = defaultdict(int)
    for sample in soak.samples:
        if sample.status != 200 and sample.status != 503:
            errors[(sample.route, sample.status)] += 1
    shed = sum(1 for s in soak.samples if s.status == 503)
    lines.append(f"errors (not 200, not 503): {sum(errors.values())} {dict(errors) or ''}; 503 shed: {shed}")
    window = min(60.0, minutes * 60 / 3)
    end = max(s.at for s in soak.samples)
    lines.append(f"{'route':40} {'first p50':>10} {'first p99':>10} {'last p50':>10} {'last p99':>10}  (ms; "
                 f"first and last {window:.0f} s)")
    for route in sorted({s.route for s in soak.samples}):
        first = [s.ms for s in soak.samples if s.route == route and s.at < window and s.status == 200]
        last = [s.ms for s in soak.samples if s.route == route and s.at > end - window and s.status == 200]
        cells = [f"{_percentile(v, q):10.0f}" if v else f"{'-':>10}" for v in (first, last) for q in (0.5, 0.99)]
        lines.append(f"{route:40} {' '.join(cells)}")
    lines.append("worker RSS (MB) over time: " + ", ".join(
        f"{at / 60:.1f} min {rss:.0f}" for at, rss in memory if rss is not None))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", "10")))
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    server = ServerProcess()
    with server as url:
        assert server.process is not None
        worker = _worker_pid(server.process.pid)
        soak = Soak(url, _image_b64())
        load_start = Path("/proc/loadavg").read_text().split()[0]
        stop_at = time.monotonic() + args.minutes * 60
        memory: list[tuple[float, float | None]] = [(0.0, _rss_mb(worker))]

        def client(index: int) -> None:
            rng, session = random.Random(args.seed * 1000 + index), requests.Session()
            while time.monotonic() < stop_at:
                soak.call(session, rng)

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(args.clients)]
        for thread in threads:
            thread.start()
        while time.monotonic() < stop_at:
            time.sleep(min(15.0, max(0.0, stop_at - time.monotonic())))
            memory.append((time.monotonic() - soak.started, _rss_mb(worker)))
        for thread in threads:
            thread.join(150)
        load_end = Path("/proc/loadavg").read_text().split()[0]
    print(_report(soak, memory, args.minutes, (load_start, load_end)))
    bad = sum(1 for s in soak.samples if s.status not in (200, 503))
    print(json.dumps({"requests": len(soak.samples), "errors": bad,
                      "p50_ms": statistics.median(s.ms for s in soak.samples)}))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
