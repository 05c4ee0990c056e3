"""huggingface_hub's InferenceClient, unmodified, against the real server and its default models.

``InferenceClient(base_url=f"{server}/models/{name}")`` posts each task to that URL in Hugging Face's
shapes (api/hf/inference.py); chat goes to ``.../v1/chat/completions`` under it, or under the server's root.
Speech recognition's line is in test_speech.py.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from huggingface_hub import InferenceClient
from huggingface_hub.errors import BadRequestError, HfHubHTTPError
from PIL import Image
from skimage import data as pictures

GENERATOR = "smollm2-135m-instruct"
PROMPT = "The capital of France is"


def hf(server_url: str, model: str) -> InferenceClient:
    return InferenceClient(base_url=f"{server_url}/models/{model}")


@pytest.fixture(scope="module")
def cat_jpeg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("images") / "cat.jpg"
    Image.fromarray(pictures.chelsea()).save(path, quality=90)
    return path


# -- chat

def test_chat_at_a_model_url(server_url: str) -> None:
    answer = hf(server_url, GENERATOR).chat_completion(
        [{"role": "user", "content": "What is the capital of France? One word."}], max_tokens=8, temperature=0)
    assert answer.model == GENERATOR
    assert "paris" in (answer.choices[0].message.content or "").lower()


@pytest.mark.parametrize("model", [None, GENERATOR])
def test_chat_at_the_root_with_or_without_a_model(server_url: str, model: str | None) -> None:
    client = InferenceClient(base_url=server_url)
    answer = client.chat_completion([{"role": "user", "content": "Say hello."}], model=model, max_tokens=6)
    assert answer.model == GENERATOR and answer.choices[0].message.content


def test_chat_stream_at_a_model_url(server_url: str) -> None:
    client = hf(server_url, GENERATOR)  # it owns the open stream: it must outlive the iteration
    chunks = list(client.chat_completion([{"role": "user", "content": "Count to three."}], max_tokens=12,
                                         temperature=0, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() and chunks[-1].choices[0].finish_reason in ("stop", "length")


# -- text generation (TGI's shapes)

def test_text_generation_is_greedy_by_default_and_matches_its_stream(server_url: str) -> None:
    client = hf(server_url, GENERATOR)
    whole = client.text_generation(PROMPT, max_new_tokens=12)
    again = client.text_generation(PROMPT, max_new_tokens=12)
    pieces = list(client.text_generation(PROMPT, max_new_tokens=12, stream=True))
    assert whole == again  # no do_sample, no temperature: greedy, as TGI
    assert "paris" in whole.lower()
    assert "".join(pieces) == whole and len(pieces) > 1


def test_text_generation_details_count_the_tokens(server_url: str) -> None:
    out = hf(server_url, GENERATOR).text_generation(PROMPT, max_new_tokens=6, details=True, top_n_tokens=2)
    assert out.details is not None
    assert out.details.finish_reason == "length" and out.details.generated_tokens == 6
    assert len(out.details.tokens) == 6 and all(t.id >= 0 and t.logprob <= 0 for t in out.details.tokens)
    assert "".join(t.text for t in out.details.tokens).strip() == out.generated_text.strip()
    assert out.details.top_tokens is not None and all(len(top) == 2 for top in out.details.top_tokens)


def test_streamed_details_end_with_the_whole_text(server_url: str) -> None:
    client = hf(server_url, GENERATOR)
    events = list(client.text_generation(PROMPT, max_new_tokens=8, stream=True, details=True, return_full_text=True))
    last = events[-1]
    assert last.details is not None and last.details.generated_tokens == 8
    assert last.generated_text == PROMPT + "".join(e.token.text for e in events)
    assert all(e.details is None for e in events[:-1])


def test_a_stop_sequence_ends_the_text(server_url: str) -> None:
    out = hf(server_url, GENERATOR).text_generation("Count: 1, 2, 3,", max_new_tokens=20, stop=[" 5"],
                                                    details=True)
    assert out.details is not None and out.details.finish_reason == "stop_sequence"
    assert " 5" not in out.generated_text and "4" in out.generated_text


def test_sampling_with_a_seed_repeats(server_url: str) -> None:
    client = hf(server_url, GENERATOR)
    runs = {client.text_generation(PROMPT, max_new_tokens=10, do_sample=True, temperature=1.2, seed=7)
            for _ in range(2)}
    assert len(runs) == 1


def test_a_json_grammar_is_enforced(server_url: str) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 24},
                                               "is_capital": {"type": "boolean"}},
              "required": ["city", "is_capital"], "additionalProperties": False}
    out = hf(server_url, GENERATOR).text_generation("Describe Paris as JSON:", max_new_tokens=60,
                                                    grammar={"type": "json", "value": schema})
    jsonschema.validate(json.loads(out), schema)


def test_an_unsupported_parameter_is_a_clear_400(server_url: str) -> None:
    with pytest.raises(HfHubHTTPError) as caught:
        hf(server_url, GENERATOR).text_generation(PROMPT, max_new_tokens=4, repetition_penalty=1.3)
    assert caught.value.response.status_code == 400
    assert "repetition_penalty" in caught.value.response.text


# -- text tasks

def test_feature_extraction_matches_the_openai_route(server_url: str) -> None:
    import openai

    vector = hf(server_url, "all-minilm-l6-v2").feature_extraction("a red car")
    several = hf(server_url, "all-minilm-l6-v2").feature_extraction(["a red car", "a blue boat"])
    reference = openai.OpenAI(base_url=f"{server_url}/v1", api_key="unused").embeddings.create(
        model="all-minilm-l6-v2", input="a red car").data[0].embedding
    assert vector.shape == (1, 384) and several.shape == (2, 384)
    np.testing.assert_allclose(vector[0], reference, atol=1e-5)
    np.testing.assert_allclose(several[0], vector[0], atol=1e-5)


def test_zero_shot_classification(server_url: str) -> None:
    labels = hf(server_url, "all-minilm-l6-v2").zero_shot_classification(
        "The striker scored twice in the final.", ["sports", "cooking", "finance"],
        hypothesis_template="This text is about {}.")
    assert labels[0].label == "sports"
    assert sorted(x.label for x in labels) == ["cooking", "finance", "sports"]
    assert abs(sum(x.score for x in labels) - 1) < 1e-4


def test_text_classification_with_the_sentiment_model(server_url: str) -> None:
    client = hf(server_url, "minilm-sentiment")
    loved, hated = client.text_classification("I love it, wonderful!"), client.text_classification("I hate this.")
    assert loved[0].label == "positive" and hated[0].label == "negative"
    assert len(client.text_classification("Fine.", top_k=1)) == 1


def test_token_classification_with_spacy(server_url: str) -> None:
    text = "Angela Merkel visited Paris in 2019."
    entities = hf(server_url, "en-core-web-sm").token_classification(text)
    found = {(e.entity_group, e.word) for e in entities}
    assert {("PERSON", "Angela Merkel"), ("GPE", "Paris")} <= found
    assert all(text[e.start:e.end] == e.word for e in entities)
    kept = hf(server_url, "en-core-web-sm").token_classification(text, ignore_labels=["DATE", "GPE"])
    assert {e.entity_group for e in kept} == {"PERSON"}


# -- image tasks: the file itself as the body, or base64 JSON when parameters are given

def test_image_classification(server_url: str, cat_jpeg: Path) -> None:
    labels = hf(server_url, "efficientnet-lite0").image_classification(cat_jpeg)
    assert len(labels) == 5 and "cat" in labels[0].label.lower()
    assert len(hf(server_url, "efficientnet-lite0").image_classification(cat_jpeg, top_k=2)) == 2


def test_object_detection(server_url: str) -> None:
    buffer = io.BytesIO()
    Image.fromarray(pictures.coffee()).save(buffer, format="JPEG")
    found = hf(server_url, "yolov3-tiny").object_detection(buffer.getvalue())
    cup = next(o for o in found if o.label == "cup")
    height, width = pictures.coffee().shape[:2]
    assert 0 <= cup.box.xmin < cup.box.xmax <= width and 0 <= cup.box.ymin < cup.box.ymax <= height
    assert hf(server_url, "yolov3-tiny").object_detection(buffer.getvalue(), threshold=0.95) == []


def test_faces_come_as_object_detection(server_url: str) -> None:
    buffer = io.BytesIO()
    Image.fromarray(pictures.astronaut()).save(buffer, format="PNG")
    faces = hf(server_url, "mtcnn").object_detection(buffer.getvalue())
    assert [f.label for f in faces] == ["face"]


# -- errors keep their meaning

def test_a_model_without_a_shape_and_an_unknown_model(server_url: str) -> None:
    with pytest.raises(BadRequestError):
        hf(server_url, "dlib-face-recognition").object_detection(b"not used")
    with pytest.raises(HfHubHTTPError) as caught:
        hf(server_url, "no-such-model").text_classification("hello")
    assert caught.value.response.status_code == 404
