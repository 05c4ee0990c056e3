"""A key's ``redact_input`` policy: personal data is removed from its text before a model sees it.

Applied in one place: :func:`init_app` makes :func:`redact_items` one of the server's input filters,
which ``_common.submit`` and ``_common.stream`` pass the items of every call through, so each route
shape that reaches a generation or embedding model (OpenAI's completions, chat, responses and
embeddings, Hugging Face's and TGI's) is covered, and the model only ever receives the redacted text.
Prompts and the ``content`` of chat messages are redacted, each span replaced by ``<TYPE>``
(``<PERSON>``), for the pii model's default types; token-id inputs cannot be read and are refused.
The response says how many spans were replaced in ``X-Maas-Redacted`` (0 included: the policy ran).

Without a ready pii model, such a key's calls are refused with 503 ``redaction_unavailable``: the key's
owner asked that no personal data reach a model, and serving the text as it came would break that
silently. 503 rather than 409: nothing in the request is wrong, the server cannot serve it now.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from flask import Flask, Response, g

from ..errors import APIError
from ..models.contract import Method
from ..models.generation_io import GENERATE, GenerationRequest
from ..models.pii_io import FIND_PII, PiiItem
from ..models.text_io import EMBED, TokenIds
from ..runtime.registry import ModelEntry
from ._common import state, submit, wait_all
from .entities import admit_entity_texts

REDACTED_HEADER = "X-Maas-Redacted"


def init_app(app: Flask) -> None:
    app.extensions["maas"].input_filters.append(redact_items)
    app.after_request(_tell_redacted)


def redacting() -> bool:
    """Whether the request's key has the redact_input policy."""
    account = g.get("maas_account")
    return account is not None and bool(account.redact_input)


def redact_items(method: Method[Any, Any], items: Iterable[Any]) -> Iterable[Any]:
    """`items` as the model may see them: unchanged, or for a redacting key's generation and embedding work,
    with every text redacted (one batched call to the pii model for all of them)."""
    if method not in (GENERATE, EMBED) or not redacting():
        return items
    items = list(items)
    texts: list[str] = []

    def collect(text: str) -> str:
        texts.append(text)
        return text

    _map_texts(items, collect)
    g.maas_redacted = getattr(g, "maas_redacted", 0)
    if not texts:
        return items
    admit_entity_texts(texts, "input")  # spaCy's time and memory, limited as on /v1/entities
    results = wait_all(submit(_pii_model(), FIND_PII, [PiiItem(text, redaction="type") for text in texts]))
    g.maas_redacted += sum(len(result.spans) for result in results)
    redacted = iter([result.redacted or "" for result in results])
    return _map_texts(items, lambda _: next(redacted))


def _map_texts(items: list[Any], change: Callable[[str], str]) -> list[Any]:
    """The items with `change` applied to each non-empty text they hold, in a fixed order."""
    return [_map_item(item, change) for item in items]


def _map_item(item: Any, change: Callable[[str], str]) -> Any:
    if isinstance(item, str):
        return change(item) if item else item
    if isinstance(item, TokenIds):
        raise APIError("this API key's input is redacted (redact_input), which needs text: send the input as "
                       "strings, not token ids", param="input", code="redaction_needs_text")
    if isinstance(item, GenerationRequest):
        prompt = change(item.prompt) if item.prompt else item.prompt
        messages = None if item.messages is None else [_message(m, change) for m in item.messages]
        return replace(item, prompt=prompt, messages=messages)
    raise AssertionError(f"no redaction for {type(item).__name__}")  # GENERATE and EMBED items only


def _message(message: dict[str, Any], change: Callable[[str], str]) -> dict[str, Any]:
    content = message.get("content")
    return {**message, "content": change(content)} if isinstance(content, str) and content else message


def _pii_model() -> ModelEntry:
    entry = next((e for e in state().registry.entries() if e.offers(FIND_PII) and e.runner is not None), None)
    if entry is None:
        raise APIError("this API key's input is redacted (redact_input), and no pii model is ready on this server: "
                       "the request is refused rather than sent unredacted; retry later, or ask the operator to "
                       "serve a pii model", status=503, code="redaction_unavailable", headers={"Retry-After": "5"})
    return entry


def _tell_redacted(response: Response) -> Response:
    count = g.get("maas_redacted")
    if count is not None:
        response.headers[REDACTED_HEADER] = str(count)
    return response
