"""One request's failure is its own: poisoned sampling values, a row whose scores go bad mid-decode,
one item that breaks a batch. Neighbours finish, with the same output as alone."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import torch
from flask.testing import FlaskClient

from maas_server.config import ModelConfig
from maas_server.models.contract import ItemFailed, StepMethod
from maas_server.models.generation_io import GENERATE, GenerationRequest
from maas_server.models.text_generation import TextGenerationModel, _sample
from maas_server.runtime.runner import Runner
from tests.server.runner_support import DOUBLE, GatedModel

POISON_LENGTH = 5  # a row whose real tokens number exactly this gets NaN scores


@pytest.fixture(scope="module")
def model(tiny_gpt2: str, tmp_path_factory: pytest.TempPathFactory) -> TextGenerationModel:
    config = ModelConfig(name="g", task="text-generation", source=tiny_gpt2)
    return TextGenerationModel.load(config, "cpu", torch.float32, tmp_path_factory.mktemp("cache"))


@pytest.mark.parametrize(("temperature", "top_p"), [(1e-38, 1.0), (1e-300, 1.0), (5e-324, 1.0), (1.0, 1e-46),
                                                    (1.0, 5e-324), (1e-300, 5e-324), (2.0, 1e-300)])
def test_no_schema_valid_sampling_value_makes_probabilities_non_finite(temperature: float, top_p: float) -> None:
    logits = torch.randn(3, 50) * 30
    chosen = _sample(logits, temperature, top_p, torch.Generator().manual_seed(0))
    assert chosen.tolist() == logits.argmax(dim=-1).tolist()  # the limit of both is greedy


class _PoisonRows:
    """Wraps a causal LM: rows whose attention mask has exactly POISON_LENGTH real tokens get NaN logits."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.config, self.dtype, self.forward = inner.config, inner.dtype, inner.forward

    def __call__(self, **kwargs: Any) -> Any:
        out = self.inner(**kwargs)
        poisoned = kwargs["attention_mask"].sum(dim=-1) == POISON_LENGTH
        out.logits[poisoned] = float("nan")
        return out


def _greedy(prompt: str) -> GenerationRequest:
    return GenerationRequest(prompt=prompt, max_tokens=12, temperature=0)


def test_a_row_whose_scores_go_bad_fails_alone_and_neighbours_decode_on(model: TextGenerationModel) -> None:
    prompts = ["The quick brown fox jumps over", "Hello there my good old friend and", "A B C D E F G H",
               "one two three four five six seven"]
    assert all(len(model.tokenizer(p)["input_ids"]) > POISON_LENGTH for p in prompts)
    alone = [model.run([model.prepare(_greedy(p))])[0].choices[0].text for p in prompts]
    poisoned = model.prepare(_greedy("Once"))  # 1 token: after 4 decode steps it has POISON_LENGTH
    assert len(poisoned.prompt_ids) < POISON_LENGTH

    inner, model.model = model.model, _PoisonRows(model.model)
    runner = Runner("g", model, max_batch_size=8, max_wait_ms=0).start()
    try:
        gate = threading.Event()
        # Queue all five behind a gate so they join one decode batch together.
        futures = _submit_together(runner, [poisoned.request] + [_greedy(p) for p in prompts], gate)
        with pytest.raises(ItemFailed, match="non-finite"):
            futures[0].result(30)
        assert [f.result(30).choices[0].text for f in futures[1:]] == alone
    finally:
        model.model = inner
        runner.stop()


def _submit_together(runner: Runner, requests: list[GenerationRequest], gate: threading.Event) -> list[Any]:
    first_method = runner.methods["generate"]
    assert isinstance(first_method, StepMethod)
    original = first_method.prepare
    calls = []

    def gated_prepare(request: GenerationRequest) -> Any:
        calls.append(request)
        if len(calls) == 1:
            gate.wait(10)
        return original(request)

    runner.methods["generate"] = StepMethod(gated_prepare, first_method.new_batch, rows=first_method.rows,
                                            prefill_tokens=first_method.prefill_tokens)
    futures = [runner.submit(GENERATE, r) for r in requests]
    gate.set()
    return futures


def test_one_item_that_breaks_a_batch_fails_alone() -> None:
    model = GatedModel()
    runner = Runner("m", model, max_batch_size=8, max_wait_ms=0).start()
    try:
        blocker = runner.submit(DOUBLE, 1)
        futures = runner.submit_many(DOUBLE, [2, "boom", 3])
        model.gate.set()
        assert blocker.result(5) == 2
        assert futures[0].result(5) == 4 and futures[2].result(5) == 6
        with pytest.raises(ItemFailed, match="kaboom"):
            futures[1].result(5)
        assert "boom" in model.batches[0] and len(model.batches[0]) > 1  # tried together first,
        assert ["boom"] in model.batches  # then one by one
    finally:
        runner.stop()


def test_poisoned_sampling_values_beside_others_all_answer_200(client: FlaskClient) -> None:
    prompt = {"model": "tiny-gpt2", "prompt": "Hello world", "max_tokens": 8, "temperature": 0}
    alone = client.post("/v1/completions", json=prompt).get_json()["choices"][0]["text"]
    results: dict[int, Any] = {}

    def call(i: int, extra: dict[str, Any]) -> None:
        results[i] = client.application.test_client().post("/v1/completions", json={**prompt, **extra})

    poisons = [{"temperature": 1e-300}, {"top_p": 5e-324, "temperature": 1.0}, {"temperature": 1e-45}]
    threads = [threading.Thread(target=call, args=(i, extra)) for i, extra in enumerate(poisons + [{}] * 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [r.status_code for r in results.values()] == [200] * 7
    assert [results[i].get_json()["choices"][0]["text"] for i in range(3, 7)] == [alone] * 4


def test_a_failing_item_answers_500_that_clients_must_not_retry(client: FlaskClient, monkeypatch: Any) -> None:
    from maas_server.api import embeddings as route

    def fail(*_: Any, **__: Any) -> Any:
        raise ItemFailed("the model failed on this input (RuntimeError: boom)")

    monkeypatch.setattr(route, "wait_all", fail)
    response = client.post("/v1/embeddings", json={"model": "tiny-embed", "input": "x"})
    assert response.status_code == 500
    assert response.headers["x-should-retry"] == "false"
    assert response.get_json()["error"]["code"] == "model_error"

