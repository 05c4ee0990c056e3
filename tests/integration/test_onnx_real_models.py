"""The default encoders on ONNX Runtime (runtime = "onnx" / "onnx-int8") against torch float32, on inputs the
load-time gate never saw. float32 ONNX must serve and match; int8 serves only where its gate passed on this CPU,
and then must hold its quality here too (where it missed, torch serves, and must answer as torch)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import torch

from maas_server.models.image_classification import gate_sample
from maas_server.models.text_io import TextItem
from maas_server.runtime.assembly import load_and_warm
from maas_server.settings import load_settings

DATA = Path(__file__).resolve().parent.parent / "data"
PROBES = {part: [json.loads(line) for line in (DATA / f"sentiment_probes_{part}.jsonl").read_text().splitlines()
                 if line.strip()] for part in ("dev", "test")}
TEXTS = [row["text"] for rows in PROBES.values() for row in rows]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")  # a fresh cache: each mode is exported here


@cache
def _adapter(name: str, runtime: str, cache_dir: Path) -> Any:
    base = load_settings().model(name)
    assert base is not None, f"{name} is not in the default config"
    return load_and_warm(base.model_copy(update={"runtime": runtime, "device": "cpu"}), cache_dir)


def _vectors(model: Any) -> torch.Tensor:
    return torch.tensor([v.values for v in model.embed([model.prepare_text(t) for t in TEXTS])])


@pytest.mark.parametrize("runtime", ["onnx", "onnx-int8"])
def test_minilm_embeddings_keep_their_direction(runtime: str, cache_dir: Path) -> None:
    model, reference = _adapter("all-minilm-l6-v2", runtime, cache_dir), _adapter("all-minilm-l6-v2", "torch",
                                                                                   cache_dir)
    cosine = torch.nn.functional.cosine_similarity(_vectors(model), _vectors(reference), dim=-1)
    served = model.describe().runtime
    if runtime == "onnx":
        assert served == "onnx"
        assert cosine.min() > 0.9999
    elif served == "onnx-int8":  # passed its gate at load: it must hold on these 120 other texts
        assert model.describe().dtype == "int8"
        assert cosine.mean() > 0.985 and cosine.min() > 0.93
    else:
        assert served == "torch" and cosine.min() > 0.9999


@pytest.mark.parametrize("runtime", ["onnx", "onnx-int8"])
def test_sentiment_keeps_its_held_out_accuracy(runtime: str, cache_dir: Path) -> None:
    model, reference = _adapter("minilm-sentiment", runtime, cache_dir), _adapter("minilm-sentiment", "torch",
                                                                                   cache_dir)
    held_out = PROBES["test"]

    def accuracy(adapter: Any) -> float:
        scores = adapter.classify([adapter.prepare(TextItem(row["text"])) for row in held_out])
        return sum(s.labels[0][0] == row["label"] for s, row in zip(scores, held_out)) / len(held_out)

    if runtime == "onnx":
        assert model.describe().runtime == "onnx"
    assert abs(accuracy(model) - accuracy(reference)) <= 0.01  # within 1 point


@pytest.mark.parametrize("runtime", ["onnx", "onnx-int8"])
def test_efficientnet_keeps_its_top_label(runtime: str, cache_dir: Path) -> None:
    model = _adapter("efficientnet-lite0", runtime, cache_dir)
    reference = _adapter("efficientnet-lite0", "torch", cache_dir)
    pixels = list(gate_sample(reference.transform, 48, seed=7)[0][0])
    top = [[s.labels[0][0] for s in adapter.classify(pixels)] for adapter in (model, reference)]
    agreement = sum(a == b for a, b in zip(*top)) / len(pixels)
    if runtime == "onnx":
        assert model.describe().runtime == "onnx"
    assert agreement >= 0.97  # one image of 48 may sit on a boundary on another CPU's rounding
