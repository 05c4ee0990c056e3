"""Accounts and operations through real gunicorn: two workers share limits and metrics; TLS; JSON logs.

Tiny models (built by tests/tiny_models.py) keep start-up to seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from maas_server.accounts import AccountSettings, Store, create_key
from maas_server.testing import ServerProcess, free_port

PROMPT = "a rather secret prompt"


def _config(tmp: Path, bert: str) -> str:
    path = tmp / "tiny.toml"
    path.write_text(f'[server]\ncache_dir = "{tmp / "cache"}"\n\n'
                    f'[[models]]\nname = "tiny-embed"\ntask = "embeddings"\nsource = "{bert}"\n')
    return str(path)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, tiny_bert: str) -> Iterator[tuple[str, str, ServerProcess]]:
    tmp = tmp_path_factory.mktemp("ops")
    data = tmp / "data"
    store = Store(AccountSettings(data_dir=data).url)
    key, _ = create_key(store, "team-a", rpm=6)
    store.dispose()
    server = ServerProcess(_config(tmp, tiny_bert), ready_timeout=300,
                           extra_args=["--workers", "2", "--threads", "8", "--data-dir", str(data)])
    with server as url:
        yield url, key, server


def _wait_until_every_worker_loaded(url: str, workers: int) -> None:
    # /ready answers for whichever worker takes the call; /metrics shows every worker's model loads.
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        text = requests.get(f"{url}/metrics", timeout=10).text
        pids = {s.labels.get("pid") for f in text_string_to_metric_families(text) for s in f.samples
                if s.name == "maas_model_load_seconds"}
        if len(pids) >= workers:
            return
        time.sleep(0.2)
    raise AssertionError("not every worker loaded its model")


def _at_start_of_a_minute(margin: float = 20) -> None:
    # Limits count per clock minute; a burst that straddles two minutes would be counted twice.
    left = 60 - time.time() % 60
    if left < margin:
        time.sleep(left + 0.1)


def test_two_workers_share_one_limit_and_one_metrics_view(served: tuple[str, str, ServerProcess]) -> None:
    url, key, server = served
    auth = {"Authorization": f"Bearer {key}"}
    _wait_until_every_worker_loaded(url, 2)
    _at_start_of_a_minute()
    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(lambda _: requests.post(f"{url}/v1/embeddings", json={"input": PROMPT},
                                                         headers=auth, timeout=60).status_code, range(12)))
    assert sorted(statuses) == [200] * 6 + [429] * 6, statuses

    assert requests.post(f"{url}/v1/embeddings", json={"input": "x"}, timeout=10).status_code == 401
    usage = requests.get(f"{url}/v1/usage", headers=auth, timeout=10)
    assert usage.status_code == 429  # /v1/usage is a /v1 call too, and the minute's 6 are spent

    text = requests.get(f"{url}/metrics", timeout=10).text
    counts: dict[str, float] = {}
    loads = set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "maas_requests_total" and sample.labels["route"] == "/v1/embeddings":
                counts[sample.labels["status"]] = counts.get(sample.labels["status"], 0) + sample.value
            if sample.name == "maas_model_load_seconds":
                loads.add(sample.labels["model"])
    assert counts == {"200": 6, "429": 6, "401": 1}
    assert loads == {"tiny-embed"}

    lines = [json.loads(line) for line in server.log_path.read_text().splitlines() if line.startswith("{")]
    requests_logged = [entry for entry in lines if entry.get("logger") == "maas.access"
                       and entry.get("route") == "/v1/embeddings"]
    assert len(requests_logged) == 13 and {e["key"] for e in requests_logged} == {"team-a", None}
    assert all(e["request_id"] and "latency_ms" in e for e in requests_logged)
    assert PROMPT not in server.log_path.read_text() and key not in server.log_path.read_text()
    assert any(entry["logger"] == "gunicorn.error" and "Booting worker" in entry["message"] for entry in lines)


def test_tls_with_certfile_and_keyfile(tmp_path: Path, tiny_bert: str) -> None:
    cert, private = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(private),
                    "-out", str(cert)], check=True, capture_output=True)
    port = free_port()
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "maas_server.cli", "serve", "--port", str(port),
                                    "--config", _config(tmp_path, tiny_bert), "--data-dir", str(tmp_path / "data"),
                                    "--certfile", str(cert), "--keyfile", str(private)],
                                   stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 300
        while True:
            assert process.poll() is None, log.read_text()[-3000:]
            try:
                ready = requests.get(f"https://127.0.0.1:{port}/ready", verify=str(cert), timeout=2)
                if ready.status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        response = requests.post(f"https://127.0.0.1:{port}/v1/embeddings", json={"input": "hi"}, verify=str(cert),
                                 timeout=30)
        assert response.status_code == 200 and response.json()["model"] == "tiny-embed"
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/health", timeout=5)  # plain HTTP is not spoken
    finally:
        process.terminate()
        process.wait(30)
