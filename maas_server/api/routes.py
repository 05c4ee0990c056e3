"""The endpoint families the app serves, in the order /openapi.json lists them. A new family adds its line."""

from __future__ import annotations

from . import (
    accounting,
    admin,
    classify,
    detect,
    embeddings,
    entities,
    image_embeddings,
    models,
    ocr,
    openapi,
    pii,
    roles,
    scenes,
    speech,
)
from .endpoints import Endpoint, Family
from .generation import completions, responses
from .hf import inference

FAMILIES: tuple[Family, ...] = (
    completions.family, responses.family, embeddings.family, classify.family, detect.family, entities.family,
    pii.family, speech.family, ocr.family, roles.family, scenes.family, image_embeddings.family, inference.family,
    models.family, accounting.family, openapi.family, admin.family,
)


def endpoints() -> list[Endpoint]:
    """Every endpoint's record."""
    return [endpoint for family in FAMILIES for endpoint in family.endpoints]
