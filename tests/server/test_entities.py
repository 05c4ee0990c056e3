"""Named entities: BIO aggregation, both model kinds (transformers, spaCy) and POST /v1/entities.

The transformers models are tiny BERT token classifiers built here; "forced" ones give every token
one label, so spans and offsets are known exactly. The spaCy pipeline is a blank English one with
an entity ruler (rules, no weights), saved to a folder as a trained pipeline would be.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from maas_server.config import ModelConfig
from maas_server.models import load_model
from maas_server.models.contract import InvalidInput
from maas_server.models.entities_io import EXTRACT_ENTITIES, Entity, EntityItem
from maas_server.models.token_classification import TokenPrediction, aggregate
from tests import tiny_models

TEXT = "Angela Merkel visited Paris in 2019."


def _token(label: str, start: int, end: int, score: float | None = 0.5) -> TokenPrediction:
    return TokenPrediction(label, score, start, end)


# -- aggregation (no model)

def test_simple_merges_runs_of_one_type_and_drops_outside_tokens() -> None:
    text = "Angela Merkel visited New York"
    tokens = [_token("B-PER", 0, 6, 0.9), _token("I-PER", 7, 13, 0.7), _token("O", 14, 21),
              _token("B-LOC", 22, 25), _token("I-LOC", 26, 30)]
    assert aggregate(tokens, text, "simple") == [Entity("Angela Merkel", "PER", 0, 13, pytest.approx(0.8)),
                                                 Entity("New York", "LOC", 22, 30, 0.5)]


def test_simple_starts_a_span_at_each_b_and_at_a_change_of_type() -> None:
    text = "a b c d e"
    tokens = [_token("I-PER", 0, 1), _token("B-PER", 2, 3), _token("I-LOC", 4, 5), _token("O", 6, 7),
              _token("I-LOC", 8, 9)]
    assert [(e.text, e.label) for e in aggregate(tokens, text, "simple")] == [
        ("a", "PER"), ("b", "PER"), ("c", "LOC"), ("e", "LOC")]


def test_simple_merges_word_pieces_and_labels_without_prefix() -> None:
    text = "Merkelstadt, Paris"
    tokens = [_token("B-PER", 0, 3), _token("I-PER", 3, 6), _token("I-PER", 6, 11), _token("O", 11, 12),
              _token("LOC", 13, 18)]
    assert [(e.text, e.label, e.start, e.end) for e in aggregate(tokens, text, "simple")] == [
        ("Merkelstadt", "PER", 0, 11), ("Paris", "LOC", 13, 18)]


def test_none_gives_each_token_inside_an_entity_with_its_tag() -> None:
    tokens = [_token("B-PER", 0, 6, 0.9), _token("I-PER", 7, 13, 0.7), _token("O", 14, 21)]
    assert aggregate(tokens, TEXT, "none") == [Entity("Angela", "B-PER", 0, 6, 0.9),
                                               Entity("Merkel", "I-PER", 7, 13, 0.7)]


def test_a_span_without_scores_has_no_score() -> None:
    tokens = [_token("B-PER", 0, 6, None), _token("I-PER", 7, 13, None)]
    assert aggregate(tokens, TEXT, "simple")[0].score is None


# -- transformers token classifiers

def _load(source: str, tmp_path: Path, **settings):  # type: ignore[no-untyped-def]
    config = ModelConfig(name="ner", task="token-classification", source=source, **settings)
    return load_model(config, "cpu", None, tmp_path)


def _extract(model, texts: list[str], aggregation: str = "simple"):  # type: ignore[no-untyped-def]
    method = model.batch_methods()[EXTRACT_ENTITIES]
    return method.run([method.prepare(EntityItem(text, aggregation)) for text in texts])  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def forced(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Tiny classifiers that give every token one label: {label: model}."""
    return {label: _load(tiny_models.bert_token_classifier(tmp_path_factory.mktemp(label), forced=label),
                         tmp_path_factory.mktemp("cache"))
            for label in ("I-PER", "B-LOC", "O")}


def test_one_inside_run_is_one_span_over_the_whole_text(forced) -> None:  # type: ignore[no-untyped-def]
    (result,) = _extract(forced["I-PER"], [TEXT])
    (entity,) = result.entities
    assert (entity.text, entity.label, entity.start, entity.end) == (TEXT, "PER", 0, len(TEXT))
    assert entity.score == pytest.approx(1.0)
    assert result.tokens == len(forced["I-PER"].tokenizer(TEXT)["input_ids"])  # [CLS] and [SEP] included


def test_word_pieces_have_offsets_into_the_original_text(forced) -> None:  # type: ignore[no-untyped-def]
    text = "  Ça VA, Zürich?\tnaïve 😀 café "  # case, accents, tabs, an emoji: the tokenizer normalizes, offsets do not
    for aggregation in ("simple", "none"):
        (result,) = _extract(forced["B-LOC"], [text], aggregation)
        assert all(text[e.start:e.end] == e.text and e.text for e in result.entities)
        assert "".join(e.text for e in result.entities) == "".join(text.split())  # every piece, in order
        assert {e.label for e in result.entities} == {"LOC" if aggregation == "simple" else "B-LOC"}
    pieces = _extract(forced["B-LOC"], ["capitals"], "none")[0].entities
    assert [(e.text, e.start, e.end) for e in pieces] == [("capital", 0, 7), ("s", 7, 8)]  # word pieces, no [CLS]


def test_outside_tokens_give_no_entities(forced) -> None:  # type: ignore[no-untyped-def]
    assert [r.entities for r in _extract(forced["O"], [TEXT, "x"], "simple")] == [[], []]


def test_batched_inputs_of_different_lengths_keep_their_own_offsets(forced) -> None:  # type: ignore[no-untyped-def]
    texts = ["Paris", TEXT, "in the capital of France is Paris"]
    results = _extract(forced["I-PER"], texts)
    assert [r.entities[0].text for r in results] == texts


def test_transformers_model_describes_its_entity_types_and_token_limit(tiny_ner: str, tmp_path: Path) -> None:
    description = _load(tiny_ner, tmp_path).describe()
    assert (description.labels, description.context_length, description.device) == (("LOC", "PER"), 64, "cpu")


def test_too_many_tokens_is_an_invalid_input(tiny_ner: str, tmp_path: Path) -> None:
    model = _load(tiny_ner, tmp_path, max_context=8)
    with pytest.raises(InvalidInput, match="8 tokens") as caught:
        model.prepare(EntityItem("one two three four five six seven eight"))
    assert caught.value.code == "context_length_exceeded"


# -- spaCy pipelines

@pytest.fixture(scope="module")
def ruler_pipeline(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A blank English pipeline with an entity ruler, and a sentencizer that entities do not need."""
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.add_pipe("entity_ruler").add_patterns([  # type: ignore[attr-defined]
        {"label": "PERSON", "pattern": "Angela Merkel"}, {"label": "GPE", "pattern": "Paris"},
        {"label": "DATE", "pattern": [{"SHAPE": "dddd"}]}])
    folder = tmp_path_factory.mktemp("spacy") / "pipeline"
    nlp.to_disk(folder)
    return str(folder)


def test_spacy_pipeline_gives_spans_without_scores(ruler_pipeline: str, tmp_path: Path) -> None:
    model = _load(ruler_pipeline, tmp_path)
    (result,) = _extract(model, [TEXT])
    assert [(e.text, e.label, e.start, e.end, e.score) for e in result.entities] == [
        ("Angela Merkel", "PERSON", 0, 13, None), ("Paris", "GPE", 22, 27, None), ("2019", "DATE", 31, 35, None)]
    assert result.tokens == 7


def test_spacy_none_gives_tokens_with_iob_tags(ruler_pipeline: str, tmp_path: Path) -> None:
    (result,) = _extract(_load(ruler_pipeline, tmp_path), [TEXT], "none")
    assert [(e.text, e.label, e.start) for e in result.entities] == [
        ("Angela", "B-PERSON", 0), ("Merkel", "I-PERSON", 7), ("Paris", "B-GPE", 22), ("2019", "B-DATE", 31)]


def test_spacy_runs_only_what_entities_need_on_the_cpu(ruler_pipeline: str, tmp_path: Path) -> None:
    model = _load(ruler_pipeline, tmp_path)
    assert model.nlp.pipe_names == ["entity_ruler"]  # the sentencizer sets sentences, not entities
    description = model.describe()
    assert (description.device, description.labels) == ("cpu", ("DATE", "GPE", "PERSON"))
    assert (description.max_characters, description.context_length) == (100_000, None)


def test_spacy_limit_counts_characters(ruler_pipeline: str, tmp_path: Path) -> None:
    model = _load(ruler_pipeline, tmp_path, max_context=20)
    assert model.describe().max_characters == 20
    model.prepare(EntityItem("x" * 20))
    with pytest.raises(InvalidInput, match="20 characters") as caught:
        model.prepare(EntityItem("x" * 21))
    assert caught.value.code == "context_length_exceeded"


def test_spacy_pipeline_without_entities_fails_to_load(tmp_path: Path) -> None:
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.to_disk(tmp_path / "pipeline")
    with pytest.raises(ValueError, match="no component that sets entities"):
        _load(str(tmp_path / "pipeline"), tmp_path)


# -- POST /v1/entities (the app's tiny random-weight classifier)

def _post(client: FlaskClient, **body):  # type: ignore[no-untyped-def]
    return client.post("/v1/entities", json={"model": "tiny-ner", **body})


@pytest.mark.parametrize("aggregation", ["simple", "none"])
def test_entities_answer_per_input_with_offsets_into_it(client: FlaskClient, aggregation: str) -> None:
    texts = [TEXT, "Hello world! How are you today?", "é"]
    r = _post(client, input=texts, aggregation=aggregation)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert (body["object"], body["model"], [d["index"] for d in body["data"]]) == ("list", "tiny-ner", [0, 1, 2])
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 3 * 2
    for text, item in zip(texts, body["data"]):
        for entity in item["entities"]:
            assert text[entity["start"]:entity["end"]] == entity["text"]
            assert 0 <= entity["score"] <= 1
            assert entity["label"] in ({"PER", "LOC"} if aggregation == "simple" else {"B-PER", "I-PER", "B-LOC",
                                                                                      "I-LOC"})


def test_a_single_text_defaults_to_spans(client: FlaskClient) -> None:
    single = _post(client, input=TEXT).get_json()
    listed = _post(client, input=[TEXT], aggregation="simple").get_json()
    assert single["data"] == listed["data"]


@pytest.mark.parametrize("body, param, code", [
    ({"input": ""}, "input", None),
    ({"input": ["fine", ""]}, "input", None),
    ({"input": []}, "input", "invalid_value"),
    ({"input": ["x"] * 9}, "input", "too_many_inputs"),  # the app's max_inputs is 8
    ({"input": 5}, "input", None),
    ({"input": [["nested"]]}, "input", None),
    ({"input": "x", "aggregation": "first"}, "aggregation", None),
    ({"input": "x", "labels": ["PER"]}, "labels", None),
])
def test_invalid_requests_are_400_naming_the_field(client: FlaskClient, body, param: str, code) -> None:  # type: ignore[no-untyped-def]
    r = _post(client, **body)
    assert r.status_code == 400, r.get_json()
    error = r.get_json()["error"]
    assert error["param"].split(".")[0] == param  # a wrong type names the union member too: input.str
    if code:
        assert error["code"] == code


def test_a_lone_surrogate_is_400(client: FlaskClient) -> None:
    r = client.post("/v1/entities", data='{"input": "Paris \\ud800"}', content_type="application/json")
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "invalid_unicode"


def test_a_text_over_the_token_limit_is_400(client: FlaskClient) -> None:
    r = _post(client, input=["short", "word " * 100])
    assert r.status_code == 400
    error = r.get_json()["error"]
    assert (error["code"], error["param"]) == ("context_length_exceeded", "input")
    assert "64 tokens" in error["message"]


def test_a_model_of_another_task_cannot_serve_entities(client: FlaskClient) -> None:
    r = client.post("/v1/entities", json={"model": "tiny-embed", "input": TEXT})
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "wrong_model_task"


def test_without_a_model_the_first_entity_model_serves(client: FlaskClient) -> None:
    r = client.post("/v1/entities", json={"input": TEXT})
    assert r.status_code == 200 and r.get_json()["model"] == "tiny-ner"


def test_models_list_the_entity_model_with_its_types(client: FlaskClient) -> None:
    listed = {m["id"]: m for m in client.get("/v1/models").get_json()["data"]}
    assert listed["tiny-ner"]["endpoints"] == ["/v1/entities"]
    assert listed["tiny-ner"]["task"] == "token-classification"
    one = client.get("/v1/models/tiny-ner").get_json()
    assert (one["labels"], one["context_length"], one["max_characters"]) == (["LOC", "PER"], 64, None)


def test_a_call_over_max_entity_characters_is_a_400_on_both_routes(
        app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """spaCy's time and memory follow a call's characters in all: 40 texts of 100,000 characters took
    83 s and 2.3 GB, each text within its own limit."""
    server = app.extensions["maas"]
    monkeypatch.setattr(server, "config", server.config.model_copy(update={"max_entity_characters": 50}))
    text = "Paris in 2024 was warm."  # 23 characters
    assert _post(client, input=[text, text]).status_code == 200
    r = _post(client, input=[text, text, text])
    assert r.status_code == 400, r.get_json()
    error = r.get_json()["error"]
    assert (error["code"], error["param"]) == ("request_too_large", "input")
    assert "max_entity_characters" in error["message"] and "69 characters" in error["message"]
    r = client.post("/models/tiny-ner", json={"inputs": [text, text, text]})
    assert r.status_code == 400 and r.get_json()["error"]["param"] == "inputs", r.get_json()
    assert server.memory.held == 0
