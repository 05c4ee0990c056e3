"""Models on Ray Serve answer as the same models in the server process do, through the same routes.

One app (conftest.ray_app) serves each tiny model twice, on a local Ray instance and locally, so
every comparison is made in one process against the same weights: what the hop changes is where
the work runs, never the answer.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from flask import Flask
from PIL import Image

from maas_server.testing import ServerProcess, child_pids, free_port

from .conftest import running_replicas, wait_for_replicas, write_config

GREEDY = {"temperature": 0, "max_tokens": 24}


def _post(app: Flask, route: str, body: dict[str, Any]) -> Any:
    return app.test_client().post(route, json=body)


def test_both_replicas_of_a_model_serve_requests(ray_app: Flask) -> None:
    replicas = wait_for_replicas("gpt2-ray", 2)
    body = {"model": "gpt2-ray", "prompt": "The capital of France", **GREEDY}
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: _post(ray_app, "/v1/completions", body), range(24)))
    assert [a.status_code for a in answers] == [200] * 24
    assert {a.headers["X-Maas-Replica"] for a in answers} == replicas  # each one answered some
    assert len({a.json["choices"][0]["text"] for a in answers}) == 1  # and both the same


@pytest.mark.parametrize("route, body, text", [
    ("/v1/completions", {"prompt": "Once upon a time there was"}, lambda r: r["choices"][0]["text"]),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "Hello world! How are you?"}]},
     lambda r: r["choices"][0]["message"]["content"]),
], ids=["completions", "chat"])
def test_greedy_generation_on_ray_equals_local(ray_app: Flask, route: str, body: dict[str, Any], text: Any) -> None:
    local = _post(ray_app, route, {"model": "gpt2-local", **body, **GREEDY})
    remote = _post(ray_app, route, {"model": "gpt2-ray", **body, **GREEDY})
    assert local.status_code == remote.status_code == 200
    assert text(remote.json) == text(local.json) and text(local.json)
    assert remote.json["usage"] == local.json["usage"]
    assert "X-Maas-Replica" in remote.headers and "X-Maas-Replica" not in local.headers


def test_embeddings_on_ray_equal_local(ray_app: Flask) -> None:
    texts = ["The capital of France is Paris", "a cat who liked to sleep", "numbers"]
    local = _post(ray_app, "/v1/embeddings", {"model": "embed-local", "input": texts})
    remote = _post(ray_app, "/v1/embeddings", {"model": "embed-ray", "input": texts})
    assert local.status_code == remote.status_code == 200
    vectors = [np.array([d["embedding"] for d in r.json["data"]]) for r in (local, remote)]
    np.testing.assert_allclose(vectors[1], vectors[0], atol=1e-5)
    assert remote.json["usage"] == local.json["usage"]


def test_image_labels_on_ray_equal_local(ray_app: Flask) -> None:
    rng = np.random.default_rng(1)
    images = []
    for _ in range(3):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(buffer, "PNG")
        images.append(buffer.getvalue())

    def classify(model: str) -> Any:
        files = [(io.BytesIO(blob), f"{i}.png") for i, blob in enumerate(images)]
        return ray_app.test_client().post("/v1/classify/image", data={"model": model, "image": files},
                                          content_type="multipart/form-data")

    local, remote = classify("resnet-local"), classify("resnet-ray")
    assert local.status_code == remote.status_code == 200
    for mine, theirs in zip(remote.json["data"], local.json["data"]):
        assert [label["label"] for label in mine["labels"]] == [label["label"] for label in theirs["labels"]]
        np.testing.assert_allclose([label["score"] for label in mine["labels"]],
                                   [label["score"] for label in theirs["labels"]], atol=1e-5)


def _streamed(response: Any) -> tuple[str, list[str]]:
    """The text of a completions stream, and its data lines."""
    lines = [line[len("data: "):] for line in response.get_data(as_text=True).splitlines() if line.startswith("data: ")]
    text = "".join(c["text"] for line in lines[:-1] for c in json.loads(line)["choices"])
    return text, lines


def test_streaming_through_ray_equals_the_non_streamed_text(ray_app: Flask) -> None:
    body = {"model": "gpt2-ray", "prompt": "Machine learning models turn", "temperature": 0, "max_tokens": 48}
    whole = _post(ray_app, "/v1/completions", body)
    streamed = _post(ray_app, "/v1/completions", {**body, "stream": True})
    assert whole.status_code == streamed.status_code == 200
    text, lines = _streamed(streamed)
    assert lines[-1] == "[DONE]" and len(lines) > 3  # the text came in pieces
    assert text == whole.json["choices"][0]["text"]


def test_models_list_reports_backend_and_replicas_and_ready_waits_for_them(ray_app: Flask) -> None:
    wait_for_replicas("gpt2-ray", 2)
    client = ray_app.test_client()
    listed = {m["id"]: m for m in client.get("/v1/models").json["data"]}
    assert listed["gpt2-local"]["backend"] == "local" and listed["gpt2-local"]["replicas"] is None
    assert listed["embed-ray"]["backend"] == "ray" and listed["embed-ray"]["replicas"] == {"running": 1, "target": 1}
    polls = 20  # the status watch asks Ray every second
    while listed["gpt2-ray"]["replicas"] != {"running": 2, "target": 2} and polls:
        polls -= 1
        time.sleep(0.5)
        listed = {m["id"]: m for m in client.get("/v1/models").json["data"]}
    assert listed["gpt2-ray"]["replicas"] == {"running": 2, "target": 2}
    assert listed["gpt2-ray"]["device"] == "cpu"  # as the replica described itself
    ready = client.get("/ready")
    assert ready.status_code == 200 and set(ready.json["models"].values()) == {"ready"}


def test_metrics_label_each_models_series_with_its_backend(ray_app: Flask) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    client = ray_app.test_client()
    for model in ("embed-ray", "embed-local"):
        assert client.post("/v1/embeddings", json={"model": model, "input": "hello"}).status_code == 200
    text = client.get("/metrics").get_data(as_text=True)
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    backends = {s.labels["model"]: s.labels["backend"] for s in samples if s.name == "maas_requests_total"}
    assert backends["embed-ray"] == "ray" and backends["embed-local"] == "local"
    replicas = {(s.labels["model"], s.labels["state"]): s.value for s in samples if s.name == "maas_model_replicas"}
    assert replicas[("embed-ray", "target")] == 1 and ("embed-local", "target") not in replicas


def test_bad_input_to_a_model_on_ray_is_the_same_400(ray_app: Flask) -> None:
    body = {"prompt": "cat " * 3000, "max_tokens": 5}
    local = _post(ray_app, "/v1/completions", {"model": "gpt2-local", **body})
    remote = _post(ray_app, "/v1/completions", {"model": "gpt2-ray", **body})
    assert remote.status_code == local.status_code == 400
    assert remote.json == local.json and remote.json["error"]["code"] == "context_length_exceeded"


def test_a_second_server_attaches_to_the_running_application(ray_server: ServerProcess) -> None:
    assert "Ray application 'maas' attached" in ray_server.log_tail(100_000)
    answer = requests.post(f"{ray_server.url}/v1/completions",
                           json={"model": "gpt2-ray", "prompt": "Hello world", **GREEDY}, timeout=60)
    assert answer.status_code == 200 and answer.headers["X-Maas-Replica"] in running_replicas("gpt2-ray")


def _serve(config: Path, address: str) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "maas_server.cli", "serve", "--config", str(config), "--ray-address", address,
            "--port", str(free_port())]
    return subprocess.run(args, capture_output=True, text=True, timeout=240)


def test_a_server_with_another_config_refuses_to_start_and_says_how_to_roll_it_out(
        ray_app: Flask, ray_config: Path, ray_address: str, tmp_path: Path) -> None:
    changed = ray_config.read_text().replace("replicas = 2", "replicas = 3")
    assert changed != ray_config.read_text()
    refused = _serve(write_text(tmp_path / "changed.toml", changed), ray_address)
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "runs another config (changed: gpt2-ray)" in refused.stderr and "--ray-redeploy" in refused.stderr
    assert running_replicas("gpt2-ray")  # nothing was touched


def test_an_unreachable_cluster_stops_serve_with_a_clear_message(tmp_path: Path, tiny_bert: str) -> None:
    config = write_config(tmp_path / "c.toml", {"cache_dir": str(tmp_path / "cache")},
                          [{"name": "e", "task": "embeddings", "source": tiny_bert, "backend": "ray"}])
    refused = _serve(config, f"127.0.0.1:{free_port()}")
    assert refused.returncode == 2
    assert "cannot reach the Ray cluster at '127.0.0.1:" in refused.stderr and "nothing answers" in refused.stderr


def test_a_ray_client_address_is_refused_before_connecting(tmp_path: Path, tiny_bert: str) -> None:
    config = write_config(tmp_path / "c.toml", {"cache_dir": str(tmp_path / "cache")},
                          [{"name": "e", "task": "embeddings", "source": tiny_bert, "backend": "ray"}])
    refused = _serve(config, "ray://127.0.0.1:10001")
    assert refused.returncode == 2 and "does not stream through Ray Client" in refused.stderr


def _descendants(pid: int) -> set[int]:
    found, pending = set(), [pid]
    while pending:
        children = child_pids(pending.pop())
        found.update(children)
        pending += children
    return found


def _named(pids: set[int], name: str) -> set[int]:
    names = {}
    for pid in pids:
        try:
            names[pid] = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:  # it ended meanwhile
            pass
    return {pid for pid, comm in names.items() if comm == name}


def test_serve_with_a_local_ray_starts_it_serves_and_stops_it(tmp_path: Path, tiny_bert: str) -> None:
    config = write_config(tmp_path / "c.toml", {"cache_dir": str(tmp_path / "cache"), "max_inputs": 8}, [
        {"name": "e", "task": "embeddings", "source": tiny_bert, "backend": "ray", "num_cpus": 0.25, "max_queue": 8}])
    server = ServerProcess(str(config), ready_timeout=240, extra_args=["--ray-address", "local"])
    with server as url:
        assert server.process is not None
        ours = _named(_descendants(server.process.pid), "raylet")
        assert len(ours) == 1  # its own instance, under serve
        answer = requests.post(f"{url}/v1/embeddings", json={"model": "e", "input": "hello"}, timeout=60)
        assert answer.status_code == 200 and answer.headers["X-Maas-Replica"]
    assert server.process.returncode == 0
    log = server.log_tail(100_000)
    assert "Ray application 'maas' deployed" in log
    assert "SIGABRT" not in log and "SIGTERM received" not in log  # the worker drained as gunicorn asked
    deadline = time.monotonic() + 30
    while _named(ours, "raylet") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _named(ours, "raylet")  # the instance ended with serve


def write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
