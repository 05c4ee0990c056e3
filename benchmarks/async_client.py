"""AsyncClient against Client: the same concurrent requests from one event loop, then from threads.

    .venv/bin/maas-server serve --port 8777 &        # wait for "ready" (the default models load)
    .venv/bin/python benchmarks/async_client.py http://127.0.0.1:8777 --requests 200 --rounds 3

Each round sends N small embeddings requests (one short sentence each) at once: with AsyncClient
as N tasks on one event loop, then with the sync Client as N threads sharing one Client. Both
clients keep 64 pooled connections: requests opens more past them (and drops them after use), httpx
queues the rest; a third row gives AsyncClient a pool of N. Prints, per row, the best round's
throughput (requests/s), the client process's CPU time per request and the failures, the ratio
AsyncClient/Client with their default pools, then the CPU model (lscpu) and the load average, since
a server on the same machine shares its cores with the client.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
from run import cpu_model

from maas_client import AsyncClient, Client, MaasError

SENTENCE = "A short sentence to embed."


Round = tuple[float, float, Counter[str]]  # wall seconds, client CPU seconds, failures by kind


async def _async_round(base_url: str, model: str, count: int, connections: int | None) -> Round:
    http_client = None if connections is None else httpx.AsyncClient(
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections))
    async with AsyncClient(base_url=base_url, max_retries=0, http_client=http_client) as client:
        await client.embed(SENTENCE, model=model)  # connect once before timing

        async def one() -> str | None:
            try:
                await client.embed(SENTENCE, model=model)
                return None
            except MaasError as exc:
                return type(exc).__name__

        wall, cpu = time.perf_counter(), time.process_time()
        done = await asyncio.gather(*(one() for _ in range(count)))
        return time.perf_counter() - wall, time.process_time() - cpu, Counter(e for e in done if e)


def _sync_round(base_url: str, model: str, count: int) -> Round:
    with Client(base_url=base_url, max_retries=0) as client, ThreadPoolExecutor(max_workers=count) as pool:
        client.embed(SENTENCE, model=model)

        def one(_: int) -> str | None:
            try:
                client.embed(SENTENCE, model=model)
                return None
            except MaasError as exc:
                return type(exc).__name__

        list(pool.map(lambda _: None, range(count)))  # start the threads before timing
        wall, cpu = time.perf_counter(), time.process_time()
        done = list(pool.map(one, range(count)))
        return time.perf_counter() - wall, time.process_time() - cpu, Counter(e for e in done if e)


def _best(rounds: int, run: Callable[[], Round]) -> Round:
    results = [run() for _ in range(rounds)]
    return min(results, key=lambda result: result[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base_url", nargs="?", default="http://127.0.0.1:8777")
    parser.add_argument("--requests", type=int, default=200, help="concurrent requests per round (default 200)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per client; the best is reported (default 3)")
    parser.add_argument("--model", default="all-minilm-l6-v2", help="the embeddings model")
    args = parser.parse_args()

    load_before = os.getloadavg()
    n = args.requests
    rows = {
        "AsyncClient, 1 event loop": _best(args.rounds, lambda: asyncio.run(
            _async_round(args.base_url, args.model, n, None))),
        f"Client, {n} threads": _best(args.rounds, lambda: _sync_round(args.base_url, args.model, n)),
        # The default pool queues requests past 64 connections; this row shows what the queue costs.
        f"AsyncClient, {n} connections": _best(args.rounds, lambda: asyncio.run(
            _async_round(args.base_url, args.model, n, n))),
    }
    print(f"{n} concurrent embeddings requests ({args.model}), best of {args.rounds} rounds")
    for name, (wall, cpu, failed) in rows.items():
        failures = ", ".join(f"{kind} {count}" for kind, count in failed.items()) or "none"
        print(f"  {name:<30} {n / wall:7.1f} requests/s   client CPU {cpu / n * 1000:5.2f} ms/request"
              f"   failed: {failures}")
    (async_wall, async_cpu, _), (sync_wall, sync_cpu, _), _ = rows.values()
    print(f"  ratio AsyncClient/Client (default pools): throughput {sync_wall / async_wall:.2f}x, "
          f"client CPU per request {async_cpu / sync_cpu:.2f}x")
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical CPUs")
    print("load average (1, 5, 15 min): before {:.2f} {:.2f} {:.2f}, after {:.2f} {:.2f} {:.2f}".format(
        *load_before, *os.getloadavg()))


if __name__ == "__main__":
    main()
