"""A fake embeddings model and an app around it, for tests of keys, limits, usage, metrics and logs.

The fake costs one token per word, so every response's `usage` is known in advance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask

from maas_server.api.accounting import Accounts
from maas_server.app import create_app
from maas_server.models.contract import BatchMethod, Method, ModelDescription
from maas_server.models.text_io import EMBED, ZERO_SHOT_TEXT, Scores, TextItem, Vector
from maas_server.settings import load_settings


class WordEmbedder:
    """Two-dimensional vectors; `tokens` = words in the text."""

    task = "embeddings"

    def describe(self) -> ModelDescription:
        return ModelDescription(device="cpu", dtype="float32", dimensions=2)

    def batch_methods(self) -> dict[Method[Any, Any], BatchMethod]:
        return {EMBED: BatchMethod(prepare=lambda text: text,
                                     run=lambda texts: [Vector([1.0, 0.0], len(t.split())) for t in texts]),
                ZERO_SHOT_TEXT: BatchMethod(prepare=lambda item: item, run=self.classify)}

    def classify(self, items: list[TextItem]) -> list[Scores]:
        """Every label scores the same; a text costs its words."""
        return [Scores([(label, 1 / len(item.labels)) for label in item.labels], len(item.text.split()))
                for item in items]

    def warmup(self) -> None:
        pass


def fake_loader(model_config: Any, server_config: Any) -> WordEmbedder:
    return WordEmbedder()


def word_app(tmp_path: Path, **settings: Any) -> Flask:
    """An app serving `words` (the fake embedder) with its own store under `tmp_path`."""
    file = {"server": {"cache_dir": str(tmp_path / "cache")},
            "models": [{"name": "words", "task": "embeddings", "source": "unused"}]}
    flags = {"data_dir": tmp_path / "data", "auth_cache_seconds": 0, **settings}
    app = create_app(load_settings(flags, file=file), loader=fake_loader)
    assert app.extensions["maas"].registry.wait_until_loaded(10)
    return app


def accounts_of(app: Flask) -> Accounts:
    return app.extensions["maas_accounts"]  # type: ignore[no-any-return]


def reset_postgres(url: str) -> None:
    """Drop maas's tables (not via Store: a test may have left a schema version Store would refuse)."""
    from sqlalchemy import create_engine

    from maas_server.accounts.store import metadata

    engine = create_engine(url)
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            table.drop(conn, checkfirst=True)
    engine.dispose()


class Clock:
    """A clock tests move by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
