"""maas_client against the real server from `make serve`'s code, with the real default models."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
import skimage.data
from PIL import Image

import maas_client as maas


@pytest.fixture
def client(server_url: str):  # type: ignore[no-untyped-def]
    with maas.Client(base_url=server_url, max_retries=0) as client:
        yield client


def test_chat_and_generate_with_default_models(client: maas.Client) -> None:
    # Greedy, " Answer in one sentence." makes each token of "The capital of France is Paris." lead the next best
    # by 0.86 logits or more; the bare question puts "The" only 0.08 ahead of "L" (an answer without Paris).
    question = "What is the capital of France? Answer in one sentence."
    reply = client.chat([{"role": "user", "content": question}], temperature=0, max_tokens=30)
    assert "Paris" in reply.text and reply.usage is not None
    out = client.generate("Once upon a time", max_tokens=8, temperature=0)
    assert out.text and out.choices[0].finish_reason in ("stop", "length")


def test_stream_generate_yields_text_and_closes(client: maas.Client) -> None:
    with client.generate("Once upon a time", max_tokens=16, stream=True, temperature=0) as stream:
        pieces = [chunk.text for chunk in stream]
    full = client.generate("Once upon a time", max_tokens=16, temperature=0).text
    assert len([p for p in pieces if p]) >= 3 and "".join(pieces) == full


def test_embed_and_classify(client: maas.Client) -> None:
    vectors = client.embed(["a cat sits on the mat", "a kitten rests on a rug", "quarterly tax report"]).vectors
    dot = lambda a, b: sum(x * y for x, y in zip(a, b))  # noqa: E731
    assert dot(vectors[0], vectors[1]) > dot(vectors[0], vectors[2])
    result = client.classify_text("The striker scored twice in the final.", labels=["sports", "cooking"])
    assert result.labels[0].label == "sports"
    sentiment = client.classify_text(["I love it", "I hate this."])
    assert (sentiment.model, [item.label for item in sentiment.data]) == ("minilm-sentiment", ["positive", "negative"])


def test_classify_image_from_pil_bytes_and_path(client: maas.Client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    image = Image.fromarray(skimage.data.chelsea())
    path = tmp_path / "cat.jpg"
    image.save(path)
    results = client.classify_image([image, path.read_bytes(), path])
    assert all("cat" in item.labels[0].label for item in results.data)


def test_extract_entities_and_show_them(client: maas.Client) -> None:
    text = "Ada Lovelace met Charles Babbage in London in 1833."
    result = client.extract_entities(text)
    assert [(e.label, text[e.start:e.end]) for e in result.entities] == [
        ("PERSON", "Ada Lovelace"), ("PERSON", "Charles Babbage"), ("GPE", "London"), ("DATE", "1833")]
    assert result.model == "en-core-web-sm" and '<span style="font-size:9px' in result._repr_html_()
    with pytest.raises(maas.BadRequestError):
        client.extract_entities(["fine", ""])


def test_errors_are_typed(client: maas.Client) -> None:
    with pytest.raises(maas.NotFoundError) as info:
        client.generate("hi", model="no-such-model")
    assert info.value.status_code == 404 and info.value.request_id
    with pytest.raises(maas.BadRequestError):
        client.generate("hi", temperature=9)


def test_one_model_by_name(client: maas.Client) -> None:
    info = client.model("efficientnet-lite0")
    assert (info.id, info.task, info.ready) == ("efficientnet-lite0", "image-classification", True)
    with pytest.raises(maas.NotFoundError):
        client.model("no-such-model")


def test_client_is_safe_from_many_threads(client: maas.Client) -> None:
    results: list[int] = []
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            results.append(len(client.embed([f"sentence number {i}"]).vectors[0]))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and results == [384] * 16


def test_cli_against_the_server(server_url: str) -> None:
    run = lambda *args: subprocess.run([sys.executable, "-m", "maas_client.cli", *args, "--base-url", server_url],  # noqa: E731
                                       capture_output=True, text=True, timeout=120)
    models = run("models")
    assert models.returncode == 0 and "smollm2-135m-instruct" in models.stdout
    entities = run("entities", "Angela Merkel visited Paris in 2019.")
    assert entities.returncode == 0 and "PERSON        Angela Merkel" in entities.stdout
    missing = run("generate", "hi", "--model", "nope")
    assert missing.returncode == 1 and "nope" in missing.stderr and "Traceback" not in missing.stderr
