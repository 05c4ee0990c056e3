"""Faults on Ray, through `maas-server serve` (gunicorn) attached to the session's Ray application.

A replica killed mid-burst costs no client more than a 503 that says when to retry (calls that
had not been answered are sent to the other replica), a stream under way ends with an error event
and [DONE], a client that leaves stops its row in the replica, and Ray Serve brings the
deployment back to two replicas while /ready stays 200 on the one left.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from maas_client import Client
from maas_server.testing import ServerProcess

from .conftest import kill_replica, wait_for_replicas

BURST = 32
LONG = {"model": "gpt2-ray", "prompt": "Once upon a time", "temperature": 0}


def _cancelled_in_replicas() -> int:
    """Inputs the replicas' runners dropped because their caller cancelled them, summed over replicas."""
    from ray import serve

    handle = serve.get_deployment_handle("gpt2-ray", app_name="maas")
    return sum(stats["cancelled"] for stats in handle.broadcast("stats").results(timeout_s=30))


def test_a_client_that_leaves_a_stream_stops_its_row_in_the_replica(ray_server: ServerProcess) -> None:
    wait_for_replicas("gpt2-ray", 2)
    before = _cancelled_in_replicas()
    with requests.post(f"{ray_server.url}/v1/completions", json={**LONG, "max_tokens": 2000, "stream": True},
                       stream=True, timeout=60) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        assert next(line for line in lines if line).startswith(b"data: ")  # generating: then hang up
    deadline = time.monotonic() + 30
    while _cancelled_in_replicas() == before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _cancelled_in_replicas() == before + 1  # 2000 tokens take seconds: it left its decode batch


def _post_all(url: str, body: dict[str, Any], during: Any) -> list[requests.Response]:
    """BURST concurrent requests; `during()` runs once they are all sent."""
    started = threading.Barrier(BURST + 1)

    def one(_: int) -> requests.Response:
        started.wait()
        return requests.post(f"{url}/v1/completions", json=body, timeout=120)  # a hang fails the test

    with ThreadPoolExecutor(BURST) as pool:
        futures = [pool.submit(one, i) for i in range(BURST)]
        started.wait()
        time.sleep(0.5)
        during()
        return [f.result() for f in futures]


def test_killing_a_replica_mid_burst_leaves_every_client_a_200_or_a_503_with_retry_after(
        ray_server: ServerProcess) -> None:
    victim = sorted(wait_for_replicas("gpt2-ray", 2))[0]
    ready_during: list[int] = []

    def kill() -> None:
        kill_replica("gpt2-ray", victim)
        ready_during.append(requests.get(f"{ray_server.url}/ready", timeout=10).status_code)

    answers = _post_all(ray_server.url, {**LONG, "max_tokens": 200}, kill)
    statuses = [a.status_code for a in answers]
    assert set(statuses) <= {200, 503}, [a.text for a in answers if a.status_code not in (200, 503)]
    assert all(a.headers.get("Retry-After") for a in answers if a.status_code == 503)
    assert statuses.count(200) > 0
    assert ready_during == [200]  # one replica still runs
    wait_for_replicas("gpt2-ray", 2, without=victim)  # Ray Serve started a new one


def test_the_client_with_its_retries_gets_every_answer_while_a_replica_dies(ray_server: ServerProcess) -> None:
    victim = sorted(wait_for_replicas("gpt2-ray", 2))[0]
    client = Client(ray_server.url, max_retries=5)
    barrier = threading.Barrier(BURST + 1)

    def one(_: int) -> str:
        barrier.wait()
        return client.generate(LONG["prompt"], model="gpt2-ray", temperature=0, max_tokens=200).text

    with ThreadPoolExecutor(BURST) as pool:
        futures = [pool.submit(one, i) for i in range(BURST)]
        barrier.wait()
        time.sleep(0.5)
        kill_replica("gpt2-ray", victim)
        texts = [f.result(timeout=180) for f in futures]
    assert len(texts) == BURST and len(set(texts)) == 1  # 32/32, and greedy: all the same
    wait_for_replicas("gpt2-ray", 2, without=victim)


def test_a_stream_under_way_when_its_replica_dies_ends_with_an_error_event_and_done(
        ray_server: ServerProcess) -> None:
    wait_for_replicas("gpt2-ray", 2)
    with requests.post(f"{ray_server.url}/v1/completions", json={**LONG, "max_tokens": 2000, "stream": True},
                       stream=True, timeout=60) as response:
        assert response.status_code == 200
        lines = (line.decode() for line in response.iter_lines() if line)
        assert next(lines).startswith("data: ")
        victim = response.headers["X-Maas-Replica"]
        kill_replica("gpt2-ray", victim)
        rest = list(lines)  # ends: the read timeout (60 s) would fail a hang
    assert rest[-1] == "data: [DONE]"
    error = json.loads(rest[-2][len("data: "):])
    assert error["error"]["code"] == "model_unavailable"
    wait_for_replicas("gpt2-ray", 2, without=victim)
