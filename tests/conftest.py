"""Shared fixtures: tiny random-weight models built on the spot (no downloads, no hub)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _isolated_data_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    # Servers built by tests keep keys and usage in a fresh folder, never in the user's own (~/.local/share/maas).
    os.environ["MAAS_DATA_DIR"] = str(tmp_path_factory.mktemp("maas-data"))


def _tiny_models():  # type: ignore[no-untyped-def]
    # Imported lazily: it imports torch, which client-only test runs should not pay for.
    from tests import tiny_models

    return tiny_models


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _tiny_models().gpt2(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _tiny_models().bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_bert_classifier(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _tiny_models().bert_classifier(tmp_path_factory.mktemp("tiny-bert-cls"))


@pytest.fixture(scope="session")
def tiny_resnet(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _tiny_models().resnet(tmp_path_factory.mktemp("tiny-resnet"))


@pytest.fixture(scope="session")
def tiny_timm_weights(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _tiny_models().timm_weights(tmp_path_factory.mktemp("tiny-timm"))


@pytest.fixture(scope="session")
def tiny_ner(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _tiny_models().bert_token_classifier(tmp_path_factory.mktemp("tiny-ner"))


@pytest.fixture(scope="session")
def tiny_detr(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _tiny_models().detr(tmp_path_factory.mktemp("tiny-detr"))


@pytest.fixture(scope="session")
def tiny_pii(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _tiny_models().pii_ruler(tmp_path_factory.mktemp("tiny-pii"))
