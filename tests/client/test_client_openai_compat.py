"""The same client against an OpenAI-compatible server, using recorded OpenAI responses.

The fixtures are first checked against the official ``openai`` package's own types, so they
are the shapes OpenAI really sends, not shapes made up to fit this client.
"""

from __future__ import annotations

import array

import openai.types
import openai.types.chat
import pytest
import responses

import maas_client as maas
from tests.client.client_support import load_fixture

OPENAI = "https://api.openai.example/v1"  # an OpenAI-style base URL, ending in /v1
ROOT = "https://api.openai.example"


@pytest.mark.parametrize(
    ("fixture", "openai_type"),
    [
        ("openai_completion.json", openai.types.Completion),
        ("openai_chat_completion.json", openai.types.chat.ChatCompletion),
        ("openai_embedding.json", openai.types.CreateEmbeddingResponse),
    ],
)
def test_fixtures_are_valid_openai_responses(fixture: str, openai_type: type) -> None:
    openai_type.model_validate(load_fixture(fixture))  # type: ignore[attr-defined]
    for model in load_fixture("openai_models.json")["data"]:
        openai.types.Model.model_validate(model)


@pytest.fixture
def openai_client() -> maas.Client:
    return maas.Client(base_url=OPENAI, api_key="sk-proj-test")


def test_generate_against_openai(mocked: responses.RequestsMock, openai_client: maas.Client) -> None:
    mocked.post(f"{ROOT}/v1/completions", json=load_fixture("openai_completion.json"))
    out = openai_client.generate("Once upon a time", model="gpt-3.5-turbo-instruct", max_tokens=10)
    assert out.text == "\n\nThere lived a curious little fox who"
    assert out.choices[0].finish_reason == "length"
    assert out.usage is not None and out.usage.total_tokens == 14
    assert mocked.calls[0].request.headers["Authorization"] == "Bearer sk-proj-test"


def test_chat_against_openai_keeps_openai_only_fields(
    mocked: responses.RequestsMock, openai_client: maas.Client
) -> None:
    mocked.post(f"{ROOT}/v1/chat/completions", json=load_fixture("openai_chat_completion.json"))
    reply = openai_client.chat([{"role": "user", "content": "Hi"}], model="gpt-4o-mini")
    assert reply.text == "Hello! How can I help you today?"
    assert reply.system_fingerprint == "fp_06737a9306"  # type: ignore[attr-defined]
    assert reply.choices[0].message.refusal is None  # type: ignore[attr-defined]
    assert reply.usage is not None
    assert reply.usage.prompt_tokens_details == {"cached_tokens": 0, "audio_tokens": 0}  # type: ignore[attr-defined]


def test_embed_against_openai_floats_and_base64(
    mocked: responses.RequestsMock, openai_client: maas.Client
) -> None:
    floats = load_fixture("openai_embedding.json")
    mocked.post(f"{ROOT}/v1/embeddings", json=floats)
    vectors = openai_client.embed(["a", "b"], model="text-embedding-3-small").vectors
    assert vectors[0] == floats["data"][0]["embedding"]
    assert vectors[1] == floats["data"][1]["embedding"]

    mocked.replace(responses.POST, f"{ROOT}/v1/embeddings", json=load_fixture("openai_embedding_base64.json"))
    decoded = openai_client.embed("a", model="text-embedding-3-small").vectors[0]
    assert decoded == array.array("f", floats["data"][0]["embedding"]).tolist()


def test_models_against_openai_have_no_maas_fields(
    mocked: responses.RequestsMock, openai_client: maas.Client
) -> None:
    mocked.get(f"{ROOT}/v1/models", json=load_fixture("openai_models.json"))
    models = openai_client.models()
    assert [m.id for m in models][:2] == ["gpt-4o-mini", "text-embedding-3-small"]
    assert models[0].endpoints is None and models[0].owned_by == "system"


def test_omitting_model_against_openai_says_to_pass_it(
    mocked: responses.RequestsMock, openai_client: maas.Client
) -> None:
    mocked.get(f"{ROOT}/v1/models", json=load_fixture("openai_models.json"))
    with pytest.raises(maas.MaasError, match=r"carry no `endpoints`.*pass model="):
        openai_client.generate("Once upon a time")


def test_openai_error_envelope_maps_to_the_same_errors(
    mocked: responses.RequestsMock, openai_client: maas.Client
) -> None:
    mocked.post(f"{ROOT}/v1/chat/completions", status=404, json={"error": {
        "message": "The model `gpt-9` does not exist or you do not have access to it.",
        "type": "invalid_request_error", "param": None, "code": "model_not_found"}},
        headers={"x-request-id": "req_abc123"})
    with pytest.raises(maas.NotFoundError) as caught:
        openai_client.chat("Hi", model="gpt-9")
    assert caught.value.code == "model_not_found"
    assert caught.value.request_id == "req_abc123"
