"""Bad input gets a clear 4xx in the one error envelope: never a 500, never a stack trace."""

from __future__ import annotations

import base64
import io
import threading
from typing import Any

import pytest
from flask.testing import FlaskClient
from PIL import Image

from maas_server.app import create_app
from maas_server.settings import load_settings


def _error(response: Any, status: int, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.json["error"]
    assert set(error) == {"type", "message", "param", "code"} and error["message"]
    assert "Traceback" not in response.get_data(as_text=True)
    if code is not None:
        assert error["code"] == code, error
    if param is not None:
        assert error["param"] == param, error
    return error


def _image_bytes(size: tuple[int, int], fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size).save(buf, fmt)
    return buf.getvalue()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize("body, content_type", [("{not json", "application/json"), ("[1, 2]", "application/json"),
                                                ("prompt=hi", "application/x-www-form-urlencoded")])
def test_malformed_body_is_400(client: FlaskClient, body: str, content_type: str) -> None:
    _error(client.post("/v1/completions", data=body, content_type=content_type), 400)


@pytest.mark.parametrize("body, param", [
    ({"prompt": "hi", "temperature": 3}, "temperature"),
    ({"prompt": "hi", "max_token": 5}, "max_token"),          # a typo is not silently ignored
    ({"prompt": "hi", "n": 0}, "n"),
    ({"prompt": "hi", "logprobs": 9}, "logprobs"),
    ({"prompt": "hi", "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"prompt": 42}, "prompt"),
    ({}, "prompt"),
    ({"prompt": "hi", "frequency_penalty": 1.0}, None),
    ({"prompt": "hi", "temperature": True}, "temperature"),   # JSON types are not coerced
    ({"prompt": "hi", "max_tokens": "5"}, "max_tokens"),
    ({"prompt": "hi", "n": 2.0}, "n"),
    ({"prompt": "hi", "frequency_penalty": False}, "frequency_penalty"),
])
def test_invalid_field_values_are_400_naming_the_field(client: FlaskClient, body: dict[str, Any],
                                                        param: str | None) -> None:
    error = _error(client.post("/v1/completions", json=body), 400)
    if param:
        assert error["param"] is not None and error["param"].startswith(param)


def test_lone_surrogate_and_huge_seed_are_4xx(client: FlaskClient) -> None:
    _error(client.post("/v1/embeddings", data='{"input": "\\ud800"}', content_type="application/json"), 400,
           "invalid_unicode")
    _error(client.post("/v1/completions", json={"prompt": "hi", "seed": 10**30}), 400, param="seed")


def test_unsupported_openai_field_at_neutral_value_is_accepted(client: FlaskClient) -> None:
    r = client.post("/v1/completions", json={"prompt": "hi", "max_tokens": 1, "frequency_penalty": 0, "user": "x"})
    assert r.status_code == 200


def test_unknown_model_is_404_and_lists_alternatives(client: FlaskClient) -> None:
    error = _error(client.post("/v1/completions", json={"model": "gpt-9", "prompt": "hi"}), 404, "model_not_found",
                   "model")
    assert "tiny-gpt2" in error["message"]


def test_model_of_the_wrong_task_is_400(client: FlaskClient) -> None:
    _error(client.post("/v1/embeddings", json={"model": "tiny-gpt2", "input": "hi"}), 400, "wrong_model_task")


def test_unknown_route_is_404_and_wrong_method_is_405(client: FlaskClient) -> None:
    _error(client.get("/v1/nothing"), 404)
    wrong = client.get("/v1/completions")
    _error(wrong, 405)
    assert set(wrong.headers["Allow"].split(", ")) >= {"POST"}  # RFC 9110: a 405 names the methods


def test_body_over_limit_is_413(client: FlaskClient) -> None:
    _error(client.post("/v1/embeddings", json={"input": "x" * 2_100_000}), 413, "request_too_large")


def test_deeply_nested_json_is_400_not_a_recursion_error(client: FlaskClient) -> None:
    # 10,000 levels overflow the JSON parser's recursion; a few hundred would overflow later steps.
    _error(client.post("/v1/embeddings", data="[" * 10_000 + "]" * 10_000, content_type="application/json"), 400,
           "invalid_json")
    nested = '{"input": ' + "[" * 200 + '"x"' + "]" * 200 + "}"
    _error(client.post("/v1/embeddings", data=nested, content_type="application/json"), 400, "invalid_json")


def test_an_array_of_more_items_than_any_field_takes_is_400_before_validation(client: FlaskClient,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Validating 200,000 chat messages held the GIL for a second, stalling every stream: an array of
    more than 16,384 items is refused before any validation."""
    from maas_server.api.generation import schemas

    def validate(*args: object, **kwargs: object) -> None:
        raise AssertionError("validated a body that should have been refused first")

    monkeypatch.setattr(schemas.ChatCompletionRequest, "model_validate", validate)
    body = {"model": "tiny-gpt2", "messages": [{"role": "user", "content": "a"}] * 16_385}
    error = _error(client.post("/v1/chat/completions", json=body), 400, "request_too_large")
    assert "16385 items" in error["message"]


# gunicorn marks its input stream as ending where the body ends (chunked or not), as these tests do.
_GUNICORN_INPUT = {"wsgi.input_terminated": True}


def test_chunked_body_over_limit_is_413(client: FlaskClient) -> None:
    body = b'{"input": "' + b"x" * 2_100_000 + b'"}'  # over max_body_bytes, with no Content-Length
    response = client.post("/v1/embeddings", input_stream=io.BytesIO(body), content_type="application/json",
                           headers={"Transfer-Encoding": "chunked"}, environ_overrides=_GUNICORN_INPUT)
    _error(response, 413, "request_too_large")


def test_chunked_body_within_limit_is_read_whole(client: FlaskClient) -> None:
    body = b'{"model": "tiny-embed", "input": "hello"}'
    response = client.post("/v1/embeddings", input_stream=io.BytesIO(body), content_type="application/json",
                           headers={"Transfer-Encoding": "chunked"}, environ_overrides=_GUNICORN_INPUT)
    assert response.status_code == 200, response.json


@pytest.mark.parametrize("input_terminated", [True, False])
def test_body_shorter_than_its_content_length_is_400(client: FlaskClient, input_terminated: bool) -> None:
    # A client that half-closes after part of its body: the part must not be taken for the whole.
    body = b'{"input": "hello world"}'
    environ = {"CONTENT_LENGTH": str(len(body) + 50), **(_GUNICORN_INPUT if input_terminated else {})}
    response = client.post("/v1/embeddings", input_stream=io.BytesIO(body), content_type="application/json",
                           environ_overrides=environ)
    _error(response, 400, "truncated_body")


def test_multipart_body_shorter_than_its_content_length_is_400(client: FlaskClient) -> None:
    boundary = "b0undary"
    part = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"f.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + _image_bytes((8, 8), "PNG")
    body = part + f"\r\n--{boundary}--\r\n".encode()
    response = client.post("/v1/classify/image", input_stream=io.BytesIO(body[:len(part) - 20]),
                           content_type=f"multipart/form-data; boundary={boundary}",
                           environ_overrides={"CONTENT_LENGTH": str(len(body)), **_GUNICORN_INPUT})
    _error(response, 400, "truncated_body")


def test_limits_on_max_tokens_n_and_inputs(client: FlaskClient) -> None:
    _error(client.post("/v1/completions", json={"prompt": "hi", "max_tokens": 65}), 400, "max_tokens_too_large")
    _error(client.post("/v1/completions", json={"prompt": "hi", "n": 4}), 400, "n_too_large")
    _error(client.post("/v1/completions", json={"prompt": ["hi"] * 9}), 400, "too_many_inputs")
    _error(client.post("/v1/embeddings", json={"input": ["hi"] * 9}), 400, "too_many_inputs")
    _error(client.post("/v1/embeddings", json={"input": []}), 400)
    _error(client.post("/v1/classify/image", json={"image": [_b64(_image_bytes((8, 8), "PNG"))] * 9}), 400)


def test_prompt_longer_than_context_is_400(client: FlaskClient) -> None:
    _error(client.post("/v1/completions", json={"prompt": "word " * 200, "max_tokens": 4}), 400,
           "context_length_exceeded")
    _error(client.post("/v1/embeddings", json={"input": "word " * 200}), 400, "context_length_exceeded")


def test_chat_validation(client: FlaskClient) -> None:
    _error(client.post("/v1/chat/completions", json={"messages": []}), 400)
    _error(client.post("/v1/chat/completions", json={"messages": [{"role": "wizard", "content": "x"}]}), 400)
    _error(client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}],
                                                     "top_logprobs": 2}), 400)


def test_classification_label_errors(client: FlaskClient) -> None:
    _error(client.post("/v1/classify/text", json={"model": "tiny-embed", "input": "x"}), 400, "labels_required")
    _error(client.post("/v1/classify/text", json={"model": "tiny-embed", "input": "x", "labels": ["a", "a"]}), 400)
    _error(client.post("/v1/classify/text", json={"model": "tiny-sentiment", "input": "x", "labels": ["happy"]}),
           400, "unknown_label")


def test_image_errors(client: FlaskClient) -> None:
    post = lambda data: client.post("/v1/classify/image", json={"image": data})  # noqa: E731
    _error(post("not base64!!"), 400, "invalid_image")
    _error(post(_b64(b"GIF89a but not really an image")), 400, "invalid_image")
    _error(post(_b64(_image_bytes((16, 16), "ICO"))), 400, "unsupported_image_format")
    _error(post(_b64(_image_bytes((1100, 1000), "PNG"))), 413, "image_too_large")  # > max_image_pixels
    _error(post(_b64(b"\x89PNG" + b"0" * 210_000)), 413, "image_too_large")       # > max_image_bytes
    truncated = _image_bytes((64, 64), "JPEG")[:200]
    _error(post(_b64(truncated)), 400, "invalid_image")


def test_decompression_bomb_is_refused_before_decoding(client: FlaskClient) -> None:
    # A 20000x20000 PNG of one colour compresses to a few hundred KB... build a tiny header-only one instead:
    # PIL reads the size from the header, and the server refuses it before allocating 400M pixels.
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0))
    bomb = b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b"")
    _error(client.post("/v1/classify/image", json={"image": _b64(bomb)}), 413, "image_too_large")


def test_multipart_without_files_or_with_unknown_fields(client: FlaskClient) -> None:
    _error(client.post("/v1/classify/image", data={"model": "tiny-resnet"}, content_type="multipart/form-data"), 400)
    data = {"colour": "red", "f": (io.BytesIO(_image_bytes((8, 8), "PNG")), "f.png")}
    _error(client.post("/v1/classify/image", data=data, content_type="multipart/form-data"), 400)


def test_model_still_loading_is_503_and_ready_follows(tiny_bert: str, tmp_path: Any) -> None:
    gate = threading.Event()

    def slow_loader(model_config: Any, server_config: Any) -> Any:
        gate.wait(10)
        raise RuntimeError("weights missing")

    config = load_settings(file={"server": {"cache_dir": str(tmp_path)},
                                 "models": [{"name": "e", "task": "embeddings", "source": tiny_bert}]})
    app = create_app(config, loader=slow_loader)
    client = app.test_client()
    assert client.get("/ready").status_code == 503
    error = _error(client.post("/v1/embeddings", json={"input": "x"}), 503, "model_not_ready")
    assert "loading" in error["message"]
    gate.set()
    app.extensions["maas"].registry.wait_until_loaded(10)
    assert client.get("/ready").status_code == 503 and client.get("/ready").json["models"]["e"] == "failed"
    assert "weights missing" in client.post("/v1/embeddings", json={"input": "x"}).json["error"]["message"]


def test_bug_in_a_route_is_a_500_envelope_without_traceback(tmp_path: Any, tiny_bert: str) -> None:
    config = load_settings(file={"server": {"cache_dir": str(tmp_path)},
                                 "models": [{"name": "e", "task": "embeddings", "source": tiny_bert}]})
    app = create_app(config, load_models=False)

    @app.get("/boom-test")
    def boom() -> None:
        raise KeyError("secret internals")

    r = app.test_client().get("/boom-test")
    error = _error(r, 500, "internal_error")
    assert "secret internals" not in r.get_data(as_text=True) and r.headers["X-Request-ID"] in error["message"]
