"""The registry checks each loaded model against what its task declares, and routes find models by method."""

from __future__ import annotations

from typing import Any

from maas_server.config import TASKS as CONFIG_TASKS
from maas_server.models import TASKS
from maas_server.models.contract import BatchMethod, Method, ModelDescription
from maas_server.models.generation_io import GENERATE
from maas_server.models.text_io import EMBED, ZERO_SHOT_TEXT
from maas_server.runtime.registry import ModelRegistry
from maas_server.settings import load_settings


class HalfEmbedder:
    """An embeddings adapter that forgot zero-shot classification, which its task declares."""

    task = "embeddings"

    def describe(self) -> ModelDescription:
        return ModelDescription(device="cpu", dtype="float32", dimensions=3)

    def batch_methods(self) -> dict[Method[Any, Any], BatchMethod]:
        return {EMBED: BatchMethod(lambda text: text, lambda texts: texts)}

    def warmup(self) -> None:
        pass


def _registry(loader: Any) -> ModelRegistry:
    config = load_settings(file={"models": [{"name": "e", "task": "embeddings", "source": "x"},
                                            {"name": "g", "task": "text-generation", "source": "y"}]})
    return ModelRegistry(config, loader=loader)


def test_a_model_without_a_method_its_task_declares_fails_to_load_and_says_which() -> None:
    registry = _registry(lambda config, server: HalfEmbedder())
    registry.load_all()
    entry = registry.get("e")
    assert entry is not None and entry.runner is None and entry.description is None
    assert entry.error is not None and "does not implement zero-shot-text" in entry.error


def test_routes_find_models_by_the_method_they_offer_before_anything_loads() -> None:
    registry = _registry(lambda config, server: HalfEmbedder())
    entry, generator = registry.first_for(ZERO_SHOT_TEXT), registry.first_for(GENERATE)
    assert entry is not None and entry.config.name == "e" and entry.offers(EMBED)
    assert generator is not None and generator.config.name == "g" and not generator.offers(EMBED)


def test_every_configurable_task_has_an_adapter_and_methods() -> None:
    assert set(CONFIG_TASKS) == set(TASKS)
    assert all(spec.methods for spec in TASKS.values())
