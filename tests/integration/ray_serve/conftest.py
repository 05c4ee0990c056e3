"""A local Ray instance (2 CPUs), started once, and servers whose models run on it.

Ray starts once, in this process (`ray_address`), for every test of this package, and stops after
the last of them (package scope: its five replica processes and their memory are not kept through
the rest of the suite, whose servers they would only compete with). The app under test (`ray_app`) serves three
models on Ray and the same three locally, so each test can compare them in one call. `ray_server`
is `maas-server serve` under gunicorn with the same config: it finds the application deployed
and attaches, as a second server would. Models are tiny (tests/tiny_models.py), and each replica
reserves a quarter or half of a CPU so five of them fit the 2 CPUs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from maas_server.testing import ServerProcess

READY_TIMEOUT_S = 300  # five replica processes import torch on 2 shared cores
GPT2_CONTEXT = 2048  # long enough that a stream of 2000 tokens lasts seconds: time to disconnect or kill


@pytest.fixture(scope="package")
def ray_address() -> Iterator[str]:
    ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install -e '.[ray]'")
    from ray import serve

    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 2**20, log_to_driver=False,
             configure_logging=False)
    serve.start(proxy_location="Disabled")
    try:
        yield str(ray.get_runtime_context().gcs_address)
    finally:
        serve.shutdown()
        ray.shutdown()


def _toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)  # strings, numbers and booleans are the same in JSON and TOML


def write_config(path: Path, server: dict[str, Any], models: list[dict[str, Any]]) -> Path:
    lines = ["[server]", *(f"{k} = {_toml(v)}" for k, v in server.items())]
    for model in models:
        lines += ["", "[[models]]", *(f"{k} = {_toml(v)}" for k, v in model.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


def ray_models(gpt2: str, bert: str, resnet: str) -> list[dict[str, Any]]:
    """Each model twice: on Ray (gpt2 with two replicas) and in the server process."""
    ray = {"backend": "ray", "max_queue": 64}
    return [
        {"name": "gpt2-ray", "task": "text-generation", "source": gpt2, "replicas": 2, "num_cpus": 0.5, **ray},
        {"name": "embed-ray", "task": "embeddings", "source": bert, "num_cpus": 0.25, **ray},
        {"name": "resnet-ray", "task": "image-classification", "source": resnet, "num_cpus": 0.25, **ray},
        {"name": "gpt2-local", "task": "text-generation", "source": gpt2, "max_queue": 64},
        {"name": "embed-local", "task": "embeddings", "source": bert, "max_queue": 64},
        {"name": "resnet-local", "task": "image-classification", "source": resnet, "max_queue": 64},
    ]


@pytest.fixture(scope="package")
def long_gpt2(tmp_path_factory: pytest.TempPathFactory) -> str:
    from tests import tiny_models

    return tiny_models.gpt2(tmp_path_factory.mktemp("tiny-gpt2-long"), context=GPT2_CONTEXT)


@pytest.fixture(scope="package")
def ray_config(tmp_path_factory: pytest.TempPathFactory, long_gpt2: str, tiny_bert: str, tiny_resnet: str) -> Path:
    folder = tmp_path_factory.mktemp("ray-config")
    server = {"cache_dir": str(folder / "cache"), "max_inputs": 8, "max_tokens": 2000, "max_image_bytes": 200_000,
              "image_max_side": 128, "max_concurrent_requests": 100}
    return write_config(folder / "config.toml", server, ray_models(long_gpt2, tiny_bert, tiny_resnet))


@pytest.fixture(scope="package")
def ray_app(ray_config: Path, ray_address: str) -> Iterator[Flask]:
    from maas_server.app import create_app
    from maas_server.settings import load_settings

    app = create_app(load_settings({"config": ray_config, "ray_address": ray_address}))
    registry = app.extensions["maas"].registry
    assert registry.wait_until_loaded(READY_TIMEOUT_S)
    assert registry.ready, {e.config.name: e.error for e in registry.entries()}
    yield app
    registry.stop()


@pytest.fixture(scope="package")
def ray_server(ray_app: Flask, ray_config: Path, ray_address: str) -> Iterator[ServerProcess]:
    """`maas-server serve` on the same config: the application is deployed (by ray_app), so it attaches."""
    server = ServerProcess(str(ray_config), ready_timeout=READY_TIMEOUT_S, extra_args=["--ray-address", ray_address])
    with server:
        yield server


def running_replicas(model: str, app: str = "maas") -> set[str]:
    """The ids of the model's replicas that Ray Serve reports RUNNING."""
    from maas_server.runtime.ray_backend import serve_details

    deployment = serve_details()["applications"][app]["deployments"].get(model, {})
    return {r["replica_id"] for r in deployment.get("replicas", []) if r["state"] == "RUNNING"}


def wait_for_replicas(model: str, count: int, timeout: float = 180.0, without: str | None = None) -> set[str]:
    """Block until `count` replicas of the model run, `without` (a killed one) not among them; their ids."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = running_replicas(model)
        if len(running) == count and without not in running:
            return running
        time.sleep(0.5)
    raise AssertionError(f"{model} has {len(running_replicas(model))} running replicas after {timeout}s, not {count}")


def kill_replica(model: str, replica: str) -> None:
    """Kill one replica's process, as an out-of-memory kill would (Ray Serve starts a new one)."""
    import ray

    ray.kill(ray.get_actor(f"SERVE_REPLICA::maas#{model}#{replica}", namespace="serve"), no_restart=True)
