"""Config files: the shipped default is valid, and mistakes get messages that say what to change."""

from __future__ import annotations

from pathlib import Path

import pytest

from maas_server.cli import main as server_main
from maas_server.config import ConfigError
from maas_server.settings import load_settings


def test_default_config_serves_the_packaged_models() -> None:
    config = load_settings()
    assert [(m.name, m.task) for m in config.models] == [
        ("smollm2-135m-instruct", "text-generation"), ("all-minilm-l6-v2", "embeddings"),
        ("minilm-sentiment", "text-classification"),
        ("efficientnet-lite0", "image-classification"), ("en-core-web-sm", "token-classification"), ("pii", "pii"),
        ("yolov3-tiny", "object-detection"), ("mtcnn", "face-detection"),
        ("dlib-face-recognition", "face-embedding"), ("whisper-tiny.en", "speech-recognition"),
        ("pp-ocrv6", "ocr"), ("srl-dependency-rules", "semantic-role-labeling")]
    assert all(m.source.startswith("pkg://") for m in config.models)


@pytest.mark.parametrize("models, message", [
    ([], "models"),
    ([{"name": "a", "task": "translation", "source": "x"}], "models.0.task"),
    ([{"name": "a", "task": "embeddings", "source": "x", "colour": "red"}], "colour"),
    ([{"name": "a", "task": "embeddings", "source": "x"}] * 2, "unique"),
    ([{"name": "a", "task": "embeddings", "source": "x"},
      {"name": "b", "task": "embeddings", "source": "x", "aliases": ["a"]}], "unique; repeated: a"),
    ([{"name": "a", "task": "embeddings", "source": "x", "max_queue": 1}], "max_queue"),
])
def test_invalid_configs_explain_themselves(models: list[dict], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(file={"models": models})


def test_request_pixel_budget_must_admit_one_image_at_its_own_limit() -> None:
    model = {"name": "a", "task": "embeddings", "source": "x"}
    with pytest.raises(ConfigError, match="max_request_pixels"):
        load_settings(file={"server": {"max_image_pixels": 1000, "max_request_pixels": 999}, "models": [model]})
    default = load_settings()
    assert default.max_request_pixels >= default.max_image_pixels


def test_unknown_section_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown top-level"):
        load_settings(file={"modles": [], "models": []})
    bad = tmp_path / "bad.toml"
    bad.write_text("[[models]\nname=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings({"config": bad})
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings({"config": tmp_path / "missing.toml"})


def test_serve_refuses_a_bad_config_before_starting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "c.toml"
    bad.write_text('[[models]]\nname = "x"\ntask = "nope"\nsource = "y"\n')
    assert server_main(["serve", "--config", str(bad)]) == 2
    assert "models.0.task" in capsys.readouterr().err


def test_the_concurrency_bound_is_capped_because_serve_gives_it_threads() -> None:
    models = [{"name": "a", "task": "embeddings", "source": "x"}]
    with pytest.raises(ConfigError, match="max_concurrent_requests"):
        load_settings(file={"server": {"max_concurrent_requests": 20_000}, "models": models})
