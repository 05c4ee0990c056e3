"""The metric functions the runtime calls (observe_batch, set_queue_depth, observe_model_load) show in /metrics."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from maas_server.ops import metrics


def _values() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode()) for s in family.samples}


def test_runtime_hooks_are_exported() -> None:
    model = (("model", "hook-test"),)
    before = _values()
    metrics.observe_batch("hook-test", 4, [0.001, 0.002, 0.003, 0.2])
    metrics.set_queue_depth("hook-test", 7)
    metrics.observe_model_load("hook-test", 1.5)
    metrics.set_replicas("hook-test", 1, 2)
    after = _values()
    assert after[("maas_batch_size_count", model)] - before.get(("maas_batch_size_count", model), 0) == 1
    assert after[("maas_batch_size_sum", model)] - before.get(("maas_batch_size_sum", model), 0) == 4
    assert after[("maas_queue_seconds_count", model)] - before.get(("maas_queue_seconds_count", model), 0) == 4
    assert after[("maas_queue_seconds_bucket", (("le", "0.25"), *model))] == 4
    assert after[("maas_queue_seconds_bucket", (("le", "0.1"), *model))] == 3
    assert after[("maas_queue_depth", model)] == 7
    assert after[("maas_model_load_seconds", (("backend", "local"), *model))] == 1.5
    assert after[("maas_model_replicas", (("model", "hook-test"), ("state", "running")))] == 1
    assert after[("maas_model_replicas", (("model", "hook-test"), ("state", "target")))] == 2


def test_timed_loader_observes_each_load() -> None:
    class Config:
        name = "timed-test"

    loaded = metrics.timed_loader(lambda model_config, server_config: "model")(Config(), None)
    assert loaded == "model"
    assert ("maas_model_load_seconds", (("backend", "local"), ("model", "timed-test"))) in _values()


def test_multiprocess_dir_is_fresh_and_only_a_made_one_is_removed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from maas_server.serve.multiproc import prepare_multiprocess_dir, remove_created_dirs

    named = tmp_path / "named"
    named.mkdir()
    (named / "counter_123.db").write_bytes(b"stale")
    (named / "keep.txt").write_text("not ours")
    env = {"PROMETHEUS_MULTIPROC_DIR": str(named)}
    assert prepare_multiprocess_dir(env) == named
    assert [p.name for p in named.iterdir()] == ["keep.txt"]  # stale samples gone, nothing else touched

    made_env: dict[str, str] = {}
    made = prepare_multiprocess_dir(made_env)
    assert made_env["PROMETHEUS_MULTIPROC_DIR"] == str(made) and made.is_dir()
    remove_created_dirs()
    assert not made.exists() and named.is_dir()
