"""runtime = "onnx" / "onnx-int8" (models/onnx_runtime.py): export, cache, quality gate and fallback to torch,
on the real loading paths with tiny models (tests/tiny_models.py)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from pydantic import ValidationError
from safetensors.torch import save_file

from maas_server.app import create_app
from maas_server.config import ModelConfig
from maas_server.models import load_model, onnx_runtime
from maas_server.models.onnx_runtime import Gate, OnnxForward, choose_forward, top1_agreement
from maas_server.models.text_io import TextItem
from maas_server.settings import load_settings

TIMM = {"architecture": "timm:test_efficientnet", "preprocess": {"size": 64}}
TEXTS = ["a", "a longer sentence with several words in it", "two words"]


def _load(task: str, source: str, runtime: str, cache: Path, **extra: Any) -> Any:
    config = ModelConfig(name="m", task=task, source=source, runtime=runtime, **extra)  # type: ignore[arg-type]
    return load_model(config, "cpu", torch.float32, cache)


def test_embeddings_on_onnx_equal_torch(tiny_bert: str, tmp_path: Path) -> None:
    onnx, plain = _load("embeddings", tiny_bert, "onnx", tmp_path), _load("embeddings", tiny_bert, "torch", tmp_path)
    assert isinstance(onnx._hidden, OnnxForward)
    assert (onnx.describe().runtime, onnx.describe().dtype) == ("onnx", "float32")
    assert plain.describe().runtime == "torch"
    got = onnx.embed([onnx.prepare_text(t) for t in TEXTS])  # padded to the longest
    expected = plain.embed([plain.prepare_text(t) for t in TEXTS])
    for g, e in zip(got, expected):
        assert g.values == pytest.approx(e.values, abs=1e-4)


def test_int8_graph_is_quantized_and_serves_when_it_passes_the_gate(tiny_bert: str, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # Random tiny weights are no test of int8's accuracy (the real models are: tests/integration);
    # this checks the path: a quantized graph, reported as int8, answering like the model.
    monkeypatch.setattr(onnx_runtime, "MIN_COSINE", 0.5)
    model = _load("embeddings", tiny_bert, "onnx-int8", tmp_path)
    assert (model.describe().runtime, model.describe().dtype) == ("onnx-int8", "int8")
    [exported] = (tmp_path / "onnx").glob("*-onnx-int8.onnx")
    import onnx

    ops = {node.op_type for node in onnx.load(str(exported)).graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} & ops
    plain = _load("embeddings", tiny_bert, "torch", tmp_path)
    got = model.embed([model.prepare_text(t) for t in TEXTS])
    expected = plain.embed([plain.prepare_text(t) for t in TEXTS])
    for g, e in zip(got, expected):
        assert torch.nn.functional.cosine_similarity(torch.tensor(g.values), torch.tensor(e.values), dim=0) > 0.5


@pytest.mark.parametrize("runtime", ["onnx", "onnx-int8"])
def test_a_graph_that_misses_the_gate_falls_back_to_torch(runtime: str, tiny_bert: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(onnx_runtime, "MIN_COSINE", 1.01)  # no graph can reach it
    with caplog.at_level(logging.WARNING):
        model = _load("embeddings", tiny_bert, runtime, tmp_path)
    assert not isinstance(model._hidden, OnnxForward)
    assert (model.describe().runtime, model.describe().dtype) == ("torch", "float32")
    assert f"serving torch, not {runtime}: mean cosine of the sentence vectors" in caplog.text
    assert "(gate 1.01)" in caplog.text
    assert len(model.embed([model.prepare_text("still answers")])[0].values) == 32


def test_text_classifier_on_onnx_equals_torch_and_its_gate_can_fail(tiny_bert_classifier: str, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    onnx = _load("text-classification", tiny_bert_classifier, "onnx", tmp_path)
    plain = _load("text-classification", tiny_bert_classifier, "torch", tmp_path)
    assert isinstance(onnx._logits, OnnxForward) and onnx.describe().runtime == "onnx"
    items = [TextItem("good"), TextItem("a much longer review that goes on about the food and the staff")]
    for g, e in zip(onnx.classify([onnx.prepare(i) for i in items]), plain.classify([plain.prepare(i) for i in items])):
        assert dict(g.labels) == pytest.approx(dict(e.labels), abs=1e-4)
    monkeypatch.setattr(onnx_runtime, "MIN_TOP1_AGREEMENT", 1.01)
    assert _load("text-classification", tiny_bert_classifier, "onnx", tmp_path).describe().runtime == "torch"


def test_image_classifier_on_onnx_equals_torch(tiny_timm_weights: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    onnx = _load("image-classification", tiny_timm_weights, "onnx", tmp_path, **TIMM)
    plain = _load("image-classification", tiny_timm_weights, "torch", tmp_path, **TIMM)
    assert isinstance(onnx._logits, OnnxForward) and onnx.describe().runtime == "onnx"
    images = [Image.new("RGB", (80, 60), colour) for colour in ((200, 10, 10), (10, 200, 90))]
    got, expected = onnx.classify([onnx.prepare(i) for i in images]), plain.classify([plain.prepare(i) for i in images])
    for g, e in zip(got, expected):
        assert dict(g.labels) == pytest.approx(dict(e.labels), abs=1e-4)
    monkeypatch.setattr(onnx_runtime, "MIN_TOP1_AGREEMENT", 1.01)
    assert _load("image-classification", tiny_timm_weights, "onnx", tmp_path, **TIMM).describe().runtime == "torch"


def test_the_export_is_cached_by_the_weights_content(tiny_bert: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _load("embeddings", tiny_bert, "onnx", tmp_path)
    [cached] = (tmp_path / "onnx").glob("*.onnx")

    def no_export(*args: Any) -> None:
        raise AssertionError("exported again although the cache holds this model")

    monkeypatch.setattr(onnx_runtime, "_export", no_export)
    assert _load("embeddings", tiny_bert, "onnx", tmp_path).describe().runtime == "onnx"
    assert list((tmp_path / "onnx").glob("*.onnx")) == [cached]
    assert not list((tmp_path / "onnx").glob(".tmp-*"))  # the export's temporary folder is gone


def test_the_cache_key_follows_the_content_and_the_runtime(tmp_path: Path) -> None:
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"one")
    first = onnx_runtime.cache_key([str(weights)], "onnx")
    assert onnx_runtime.cache_key([str(weights)], "onnx-int8") != first
    weights.write_bytes(b"two")
    assert onnx_runtime.cache_key([str(weights)], "onnx") != first


def test_a_failed_export_serves_torch(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    module = torch.nn.Linear(4, 2).eval()

    def no_spec() -> onnx_runtime.Export:
        raise ValueError("cannot build the example inputs")

    with caplog.at_level(logging.WARNING):
        chosen = choose_forward(module, module, runtime="onnx", name="odd", device="cpu", export=no_spec,
                                sample=list, gate=Gate("agreement", 0.99, top1_agreement), cache_dir=tmp_path)
    assert chosen.forward is module and chosen.runtime == "torch"
    assert "export failed (ValueError: cannot build the example inputs)" in caplog.text


def test_onnx_is_for_the_cpu_and_for_float32(tmp_path: Path) -> None:
    module = torch.nn.Linear(4, 2).eval()
    gate = Gate("agreement", 0.99, top1_agreement)

    def unused() -> onnx_runtime.Export:
        raise AssertionError("no export is attempted")

    on_gpu = choose_forward(module, module, runtime="onnx", name="m", device="cuda:0", export=unused, sample=list,
                            gate=gate, cache_dir=tmp_path)
    assert on_gpu.runtime == "torch" and "CPU only" in on_gpu.reason
    half = torch.nn.Linear(4, 2).to(torch.bfloat16).eval()
    in_bf16 = choose_forward(half, half, runtime="onnx", name="m", device="cpu", export=unused, sample=list,
                             gate=gate, cache_dir=tmp_path)
    assert in_bf16.runtime == "torch" and "float32" in in_bf16.reason


def test_runtime_is_refused_for_tasks_it_does_not_serve() -> None:
    with pytest.raises(ValidationError, match="applies to tasks embeddings, text-classification"):
        ModelConfig(name="g", task="text-generation", source="x", runtime="onnx")
    with pytest.raises(ValidationError):
        ModelConfig(name="e", task="embeddings", source="x", runtime="tensorrt")  # type: ignore[arg-type]


def test_the_models_route_reports_the_runtime_and_explanations_stay_on_torch(tiny_bert: str, tmp_path: Path) -> None:
    head = tmp_path / "head.safetensors"
    torch.manual_seed(1)
    save_file({"weight": torch.randn(3, 32) * 8, "bias": torch.randn(3)}, str(head),
              metadata={"labels": json.dumps(["negative", "neutral", "positive"])})
    settings = load_settings({"data_dir": tmp_path / "data"}, file={
        "server": {"cache_dir": str(tmp_path / "cache")},
        "models": [{"name": "headed", "task": "text-classification", "source": tiny_bert, "head": str(head),
                    "runtime": "onnx"}]})
    app = create_app(settings)
    assert app.extensions["maas"].registry.wait_until_loaded(timeout=120)
    client = app.test_client()
    [info] = client.get("/v1/models").json["data"]
    assert (info["runtime"], info["dtype"]) == ("onnx", "float32")
    plain = client.post("/v1/classify/text", json={"input": "hello world"})
    explained = client.post("/v1/classify/text", json={"input": "hello world", "explain": True})
    assert plain.status_code == 200 and explained.status_code == 200, explained.json
    assert explained.json["data"][0]["labels"][0]["label"] == plain.json["data"][0]["labels"][0]["label"]
    assert explained.json["data"][0]["explanation"]["tokens"]  # integrated gradients: torch's autograd


def test_a_model_without_local_weights_exports_for_this_load_only(tmp_path: Path) -> None:
    module = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).eval()
    spec = onnx_runtime.Export((torch.randn(1, 4),), ("x",), {"x": {0: "batch"}, "output": {0: "batch"}})
    sample = [(torch.randn(5, 4),), (torch.randn(1, 4),)]
    chosen = choose_forward(module, module, runtime="onnx", name="hub", device="cpu", export=lambda: spec,
                            sample=lambda: sample, gate=Gate("agreement", 0.99, top1_agreement), cache_dir=tmp_path)
    assert chosen.runtime == "onnx" and isinstance(chosen.forward, OnnxForward)
    x = torch.randn(7, 4)
    with torch.inference_mode():
        assert torch.allclose(chosen.forward(x), module(x), atol=1e-5)
    assert not (tmp_path / "onnx").exists()  # nothing to key a cache entry by: none is written
