"""Reading text, semantic roles, scenes and image embeddings against the real server (gunicorn, default config),
through maas' own client, on material the tests make themselves (tests/ocr_images.py, tests/srl_sentences.py)
and the photographs scikit-image ships."""

from __future__ import annotations

import io

import numpy as np
import pytest
import skimage.data
from huggingface_hub import InferenceClient
from PIL import Image, ImageOps

from maas_client import Client
from tests.ocr_images import CONDITIONS, MAX_SET_CER, cer


@pytest.fixture(scope="module")
def client(server_url: str) -> Client:
    return Client(base_url=server_url, max_retries=0, timeout=300)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_read_text_over_http_stays_under_the_error_bound(client: Client) -> None:
    conditions = CONDITIONS[:4]  # the server's max_inputs allows more; four keep the test short
    result = client.read_text([_png(c.render()) for c in conditions])
    assert result.model == "pp-ocrv6" and len(result.data) == len(conditions)
    errors = [cer(c.text, item.text) for c, item in zip(conditions, result.data)]
    assert sum(errors) / len(errors) <= MAX_SET_CER, errors
    first = result.data[0]
    assert (first.width, first.height) == conditions[0].render().size and len(first.lines) == 3


def test_hugging_face_image_to_text_reads_an_ocr_model(server_url: str) -> None:
    condition = CONDITIONS[1]
    answer = InferenceClient(base_url=f"{server_url}/models/pp-ocrv6").image_to_text(_png(condition.render()))
    assert cer(condition.text, answer.generated_text) <= MAX_SET_CER


def test_label_roles_over_http_says_its_method(client: Client) -> None:
    result = client.label_roles("The window was broken by the boy yesterday.")
    [verb] = result.verbs
    assert result.data[0].method == "dependency-rules"
    assert verb.description == "[ARG1: The window] was [V: broken] [ARG0: by the boy] [ARGM-TMP: yesterday] ."


def test_scene_of_the_espresso_photo_is_an_indoor_cafe(client: Client) -> None:
    result = client.classify_scene(_png(Image.fromarray(skimage.data.coffee())))
    assert (result.model, result.detector) == ("efficientnet-lite0", "yolov3-tiny")
    assert (result.top_level, result.label, result.data[0].method) == ("indoor", "cafe", "heuristic")


def test_image_embeddings_keep_a_photo_near_its_mirror(client: Client) -> None:
    cat = Image.fromarray(skimage.data.chelsea())
    result = client.embed_images([_png(cat), _png(ImageOps.mirror(cat)), _png(Image.fromarray(skimage.data.rocket()))])
    vectors = np.array(result.vectors)
    assert vectors.shape == (3, 1280)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.5
