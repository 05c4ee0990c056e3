"""A text classifier made of a sentence encoder and a trained head (`head` in a model's config).

The tiny encoder is tests/tiny_models.bert (32-d hidden states); the head is written here, so the
whole path (config, loading, batching, explanations, the route) runs without the real MiniLM.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from maas_server.app import create_app
from maas_server.config import ConfigError, ModelConfig
from maas_server.models import load_model
from maas_server.models.sentiment_head import HeadError, load_head, score
from maas_server.models.text_io import CLASSIFY_TEXT, EMBED, TextItem
from maas_server.settings import load_settings

LABELS = ["negative", "neutral", "positive"]


def _head(path: Path, dimensions: int) -> str:
    torch.manual_seed(1)
    weight, bias = torch.randn(len(LABELS), dimensions) * 8, torch.randn(len(LABELS))
    save_file({"weight": weight, "bias": bias}, str(path), metadata={"labels": json.dumps(LABELS)})
    return str(path)


@pytest.fixture(scope="module")
def head_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _head(tmp_path_factory.mktemp("head") / "head.safetensors", 32)


def _config(**fields: object) -> ModelConfig:
    return ModelConfig.model_validate({"name": "tiny-headed", "task": "text-classification", **fields})


def test_the_head_scores_exactly_the_vectors_the_embeddings_model_serves(tiny_bert: str, head_file: str,
                                                                         tmp_path: Path) -> None:
    texts = ["the cat liked to sleep", "hello world", "Paris is the capital of France and Rome of Italy"]
    classify = load_model(_config(source=tiny_bert, head=head_file), "cpu", torch.float32,
                          tmp_path).batch_methods()[CLASSIFY_TEXT]
    embed = load_model(ModelConfig(name="e", task="embeddings", source=tiny_bert), "cpu", torch.float32,
                       tmp_path).batch_methods()[EMBED]

    # One batch of texts of different lengths: padding must not change any text's answer.
    answers = classify.run([classify.prepare(TextItem(t)) for t in texts])
    vectors = torch.tensor([v.values for v in embed.run([embed.prepare(t) for t in texts])])
    expected = score(load_head(head_file), vectors)

    for answer, want in zip(answers, expected):
        assert [label for label, _ in answer.labels] == [label for label, _ in want]
        assert [p for _, p in answer.labels] == pytest.approx([p for _, p in want], abs=1e-5)


def test_the_heads_labels_are_the_models_labels(tiny_bert: str, head_file: str, tmp_path: Path) -> None:
    model = load_model(_config(source=tiny_bert, head=head_file), "cpu", torch.float32, tmp_path)
    assert model.describe().labels == tuple(LABELS)
    method = model.batch_methods()[CLASSIFY_TEXT]
    [subset] = method.run([method.prepare(TextItem("hello world", ("positive", "negative")))])
    assert {label for label, _ in subset.labels} == {"positive", "negative"}
    assert sum(p for _, p in subset.labels) == pytest.approx(1.0)


def test_a_head_of_another_size_is_refused_at_load(tiny_bert: str, tmp_path: Path) -> None:
    wrong = _head(tmp_path / "wide.safetensors", 48)
    with pytest.raises(HeadError, match="48-dimensional"):
        load_model(_config(source=tiny_bert, head=wrong), "cpu", torch.float32, tmp_path)


def test_head_belongs_to_text_classification_only(head_file: str) -> None:
    with pytest.raises(ConfigError, match="applies to task text-classification only"):
        load_settings(file={"models": [{"name": "e", "task": "embeddings", "source": "x", "head": head_file}]})


def test_the_route_answers_with_the_heads_labels_and_explains(tiny_bert: str, head_file: str,
                                                              tmp_path: Path) -> None:
    settings = load_settings({"data_dir": tmp_path / "data"}, file={
        "server": {"cache_dir": str(tmp_path / "cache")},
        "models": [{"name": "tiny-headed", "task": "text-classification", "source": tiny_bert, "head": head_file}]})
    app = create_app(settings)
    assert app.extensions["maas"].registry.wait_until_loaded(timeout=60)
    client = app.test_client()

    plain = client.post("/v1/classify/text", json={"input": ["hello world", "the cat"]})
    assert plain.status_code == 200, plain.json
    assert plain.json["model"] == "tiny-headed"
    for row in plain.json["data"]:
        assert sorted(x["label"] for x in row["labels"]) == sorted(LABELS)
        assert sum(x["score"] for x in row["labels"]) == pytest.approx(1.0, abs=1e-4)

    explained = client.post("/v1/classify/text", json={"input": "hello world", "explain": True})
    assert explained.status_code == 200, explained.json
    [row] = explained.json["data"]
    assert row["labels"][0]["label"] == plain.json["data"][0]["labels"][0]["label"]
    tokens = row["explanation"]["tokens"]
    assert [t["text"] for t in tokens] == ["hello", "world"]
    assert all(-1.0 <= t["weight"] <= 1.0 for t in tokens) and any(t["weight"] != 0 for t in tokens)

    described = client.get("/v1/models/tiny-headed").json
    assert described["labels"] == LABELS and described["task"] == "text-classification"
