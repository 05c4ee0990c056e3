"""Key scopes: which models and tasks a key may use, on every route shape, and what /v1/models shows it.

The app serves two fake embedders (`other`, then `words` with the alias `w`) and a text-generation
model `talk` whose loading fails: a request the scopes admit reaches the model and gets 503
`model_not_ready`, one they refuse gets 403 before that.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from maas_server.accounts import KeyStoreError, create_key
from maas_server.accounts.scopes import check_scopes
from maas_server.app import create_app
from maas_server.cli import main
from maas_server.settings import load_settings
from tests.server.accounting_support import WordEmbedder, accounts_of

MODELS = [{"name": "other", "task": "embeddings", "source": "unused"},
          {"name": "words", "task": "embeddings", "source": "unused", "aliases": ["w"]},
          {"name": "talk", "task": "text-generation", "source": "unused"}]


def _loader(model_config: Any, server_config: Any) -> WordEmbedder:
    if model_config.task != "embeddings":
        raise RuntimeError("no generator in these tests")
    return WordEmbedder()


def scoped_app(tmp_path: Path, **settings: Any) -> Flask:
    file = {"server": {"cache_dir": str(tmp_path / "cache")}, "models": MODELS}
    flags = {"data_dir": tmp_path / "data", "auth_cache_seconds": 0, **settings}
    app = create_app(load_settings(flags, file=file), loader=_loader)
    assert app.extensions["maas"].registry.wait_until_loaded(10)
    return app


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return scoped_app(tmp_path)


@pytest.fixture
def keys(app: Flask) -> dict[str, dict[str, str]]:
    """Bearer headers: `words` (model words only), `generation` (text-generation only), `all` (unscoped)."""
    store = accounts_of(app).store
    made = {"words": create_key(store, "words-only", models=["words"])[0],
            "generation": create_key(store, "generation-only", tasks=["text-generation"])[0],
            "all": create_key(store, "everything")[0]}
    return {name: {"Authorization": f"Bearer {key}"} for name, key in made.items()}


def _refused(response: Any, code: str) -> None:
    assert response.status_code == 403, response.get_data(as_text=True)
    error = response.json["error"]
    assert error["code"] == code and error["type"] == "permission_error" and error["param"] == "model"


def test_embeddings_obey_the_model_scope_and_aliases_count_as_their_model(
        app: Flask, keys: dict[str, dict[str, str]]) -> None:
    client = app.test_client()
    for model in ("words", "w", None):  # no model named: the first embedder the key may use
        body = {"input": "hi"} if model is None else {"input": "hi", "model": model}
        response = client.post("/v1/embeddings", json=body, headers=keys["words"])
        assert response.status_code == 200 and response.json["model"] == "words", response.json
    _refused(client.post("/v1/embeddings", json={"input": "hi", "model": "other"}, headers=keys["words"]),
             "model_not_allowed")
    _refused(client.post("/v1/embeddings", json={"input": "hi", "model": "words"}, headers=keys["generation"]),
             "task_not_allowed")
    assert client.post("/v1/embeddings", json={"input": "hi", "model": "other"}, headers=keys["all"]).status_code == 200


def test_chat_obeys_the_scopes(app: Flask, keys: dict[str, dict[str, str]]) -> None:
    client = app.test_client()
    chat = {"model": "talk", "messages": [{"role": "user", "content": "hi"}]}
    _refused(client.post("/v1/chat/completions", json=chat, headers=keys["words"]), "model_not_allowed")
    for admitted in ("generation", "all"):  # past the scopes: the model itself failed to load
        response = client.post("/v1/chat/completions", json=chat, headers=keys[admitted])
        assert response.status_code == 503 and response.json["error"]["code"] == "model_not_ready"


@pytest.mark.parametrize("path", ["/models/{}", "/models/{}/embed"])
def test_hugging_face_routes_obey_the_scopes(app: Flask, keys: dict[str, dict[str, str]], path: str) -> None:
    client = app.test_client()
    assert client.post(path.format("w"), json={"inputs": "hi"}, headers=keys["words"]).status_code == 200
    _refused(client.post(path.format("other"), json={"inputs": "hi"}, headers=keys["words"]), "model_not_allowed")
    _refused(client.post(path.format("words"), json={"inputs": "hi"}, headers=keys["generation"]), "task_not_allowed")
    _refused(client.post("/models/talk/generate", json={"inputs": "hi"}, headers=keys["words"]), "model_not_allowed")


def test_models_lists_only_what_the_key_may_use(app: Flask, keys: dict[str, dict[str, str]]) -> None:
    client = app.test_client()

    def listed(who: str) -> list[str]:
        return [m["id"] for m in client.get("/v1/models", headers=keys[who]).json["data"]]

    assert listed("words") == ["words"]
    assert listed("generation") == ["talk"]
    assert listed("all") == ["other", "words", "talk"]
    assert client.get("/v1/models/other", headers=keys["words"]).status_code == 404
    assert client.get("/v1/models/w", headers=keys["words"]).json["id"] == "words"


def test_a_key_with_no_model_of_the_task_gets_403_not_another_model(app: Flask,
                                                                    keys: dict[str, dict[str, str]]) -> None:
    _refused(app.test_client().post("/v1/embeddings", json={"input": "hi"}, headers=keys["generation"]),
             "task_not_allowed")


def test_scopes_resolve_aliases_and_refuse_unknown_names(app: Flask) -> None:
    config = app.extensions["maas"].config
    assert check_scopes(config, ["w", "words", "talk"], ["embeddings"]) == (("talk", "words"), ("embeddings",))
    assert check_scopes(config, None, None) == (None, None)
    for models, tasks, message in ((["nope"], None, "unknown model"), (None, ["painting"], "unknown task"),
                                   ([], None, "empty"), (None, [], "empty")):
        with pytest.raises(KeyStoreError, match=message):
            check_scopes(config, models, tasks)


def test_keys_create_takes_scopes_and_list_shows_them(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAAS_DATABASE_URL", raising=False)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))
    config = tmp_path / "maas.toml"
    config.write_text('[[models]]\nname = "words"\ntask = "embeddings"\nsource = "unused"\naliases = ["w"]\n')
    common = ["--config", str(config), "--data-dir", str(tmp_path / "data")]
    assert main(["keys", "create", *common, "--name", "ops", "--models", "w", "--tasks",
                 "embeddings,text-generation", "--admin"]) == 0
    assert main(["keys", "create", *common, "--name", "bad", "--models", "nope"]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert main(["keys", "list", *common]) == 0
    header, ops = capsys.readouterr().out.splitlines()
    assert header.split()[6:9] == ["models", "tasks", "admin"]
    assert ops.split()[6:9] == ["words", "embeddings,text-generation", "yes"]
