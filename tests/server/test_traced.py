"""Traced forward passes (models/traced.py): kept only where they match eager, on the real loading paths."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from maas_server.config import ModelConfig
from maas_server.models import load_model
from maas_server.models.text_io import TextItem
from maas_server.models.traced import traced_forward, wants_trace


class Doubler(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x) * 2


class SignBranch(torch.nn.Module):
    """A branch on the data: a trace records the example's side and gets other inputs wrong."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 if bool(x.sum() > 0) else x * 3


class Untraceable(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> Any:
        return {"not": "a tensor"}


def test_a_graph_that_matches_eager_is_used() -> None:
    module = Doubler().eval()
    checks = [(torch.randn(1, 4),), (torch.randn(3, 4),)]
    forward = traced_forward(module, lambda: checks, name="m")
    assert isinstance(forward, torch.jit.ScriptModule)
    x = torch.randn(5, 4)
    assert torch.equal(forward(x), module(x))


def test_a_graph_with_a_baked_branch_falls_back_to_eager(caplog: pytest.LogCaptureFixture) -> None:
    module = SignBranch().eval()
    positive, negative = (torch.ones(2, 3),), (-torch.ones(2, 3),)
    with caplog.at_level(logging.WARNING):
        forward = traced_forward(module, lambda: [positive, negative], name="branchy")
    assert forward is module
    assert "branchy" in caplog.text and "differs" in caplog.text


def test_a_module_that_cannot_be_traced_serves_eager(caplog: pytest.LogCaptureFixture) -> None:
    module = Untraceable().eval()
    example = (torch.ones(1, 2),)
    with caplog.at_level(logging.WARNING):
        assert traced_forward(module, lambda: [example], name="odd") is module
    assert "tracing failed" in caplog.text


def test_check_inputs_that_cannot_be_built_mean_eager(caplog: pytest.LogCaptureFixture) -> None:
    def no_padding() -> list[tuple[torch.Tensor, ...]]:
        raise ValueError("Asking to pad but the tokenizer does not have a padding token")

    module = Doubler().eval()
    with caplog.at_level(logging.WARNING):
        assert traced_forward(module, no_padding, name="unpadded") is module
    assert "padding token" in caplog.text


def test_trace_is_on_for_cpu_by_default_and_the_config_decides_otherwise() -> None:
    assert wants_trace(None, "cpu") and not wants_trace(None, "cuda:0")
    assert not wants_trace(False, "cpu") and wants_trace(True, "cuda")


def _load(task: str, source: str, trace: bool, **extra: Any) -> Any:
    config = ModelConfig(name="m", task=task, source=source, trace=trace, **extra)  # type: ignore[arg-type]
    return load_model(config, "cpu", torch.float32, Path("/nonexistent-cache"))


def test_embeddings_traced_on_the_hugging_face_path_equal_eager(tiny_bert: str) -> None:
    traced, eager = _load("embeddings", tiny_bert, True), _load("embeddings", tiny_bert, False)
    assert isinstance(traced._hidden, torch.jit.ScriptModule)
    assert not isinstance(eager._hidden, torch.jit.ScriptModule)
    texts = ["a", "a longer sentence with several words in it", "two words"]  # padded to the longest
    got = traced.embed([traced.prepare_text(t) for t in texts])
    expected = eager.embed([eager.prepare_text(t) for t in texts])
    for g, e in zip(got, expected):
        assert g.values == pytest.approx(e.values, abs=1e-5)


@pytest.mark.parametrize("fixture,extra", [
    ("tiny_resnet", {}),
    ("tiny_timm_weights", {"architecture": "timm:test_efficientnet", "preprocess": {"size": 64}}),
])
def test_image_classifiers_traced_and_frozen_equal_eager(fixture: str, extra: dict[str, Any],
                                                        request: pytest.FixtureRequest) -> None:
    source = request.getfixturevalue(fixture)
    traced = _load("image-classification", source, True, **extra)
    eager = _load("image-classification", source, False, **extra)
    assert isinstance(traced._logits, torch.jit.ScriptModule)
    images = [Image.new("RGB", (80, 60), colour) for colour in ((200, 10, 10), (10, 200, 90))]
    got = traced.classify([traced.prepare(image) for image in images])
    expected = eager.classify([eager.prepare(image) for image in images])
    for g, e in zip(got, expected):
        assert dict(g.labels) == pytest.approx(dict(e.labels), abs=1e-4)  # label -> probability


def test_text_classifiers_traced_equal_eager(tiny_bert_classifier: str) -> None:
    traced = _load("text-classification", tiny_bert_classifier, True)
    eager = _load("text-classification", tiny_bert_classifier, False)
    assert isinstance(traced._logits, torch.jit.ScriptModule)
    items = [TextItem("good"), TextItem("a much longer review that goes on about the food and the staff")]
    got = traced.classify([traced.prepare(item) for item in items])
    expected = eager.classify([eager.prepare(item) for item in items])
    for g, e in zip(got, expected):
        assert dict(g.labels) == pytest.approx(dict(e.labels), abs=1e-5)
