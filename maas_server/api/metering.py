"""What a request used, as the view that served it tells accounting: one explicit, typed report.

A view that served a model calls ``report_usage(model, usage)`` once, with the name it resolved and
the usage it computed. A streaming view cannot know its usage when it returns, so it passes a
callable instead; accounting calls it once the stream has ended (its last byte sent, or its client
gone), so a client that leaves mid-stream is billed for what was generated until then.

A request that fails before that reports nothing: accounting takes the outcome from the response
status itself. ``resolve_model`` notes the configured model a request named (``note_model``), so a
refusal after that point (a 4xx, a 503, a client that left) is logged under the model it asked for.

Compute is metered for every request without a view's help: the handles of the work it queued
(``note_work``, called where work is submitted) carry the seconds of the model's time each item
used (runtime/handles.py), read when the request is counted out, so a request that ends early
(499, 408, 503 after work began) is charged for what it did.

Accounting reads the report (``metering()``) when it counts the request out (see api/accounting.py);
nothing here reads response bodies or the request body.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import g

from .wire import Usage

FinalUsage = Callable[[], Usage]
"""A stream's usage, known once it has ended. Called once, after the stream's body is closed (its
generation stopped); it may wait briefly for the model to settle what it generated."""


@dataclass
class Metering:
    """What this request's view reported: the model (a configured name) and what it used."""

    model: str | None = None
    usage: Usage | FinalUsage | None = None
    work: list[Any] = field(default_factory=list)  # handles (runtime/handles.py) of every item it queued

    def compute_seconds(self) -> float:
        """Seconds of model time the request's work has used so far (all of it, once it has ended)."""
        return float(sum(handle.compute_s for handle in self.work))

    def settled_usage(self) -> Usage | None:
        """The usage; a stream's final usage, so call it only once the response has ended."""
        return self.usage if self.usage is None or isinstance(self.usage, Usage) else self.usage()


def report_usage(model: str, usage: Usage | FinalUsage) -> None:
    """Tell accounting, once per request, the model that served it and what it used.

    `usage` is the usage itself, or for a stream a callable giving its final usage (see `FinalUsage`).
    """
    record = metering()
    record.model, record.usage = model, usage


def note_work(handles: list[Any]) -> None:
    """Work this request queued: its compute is charged to the request."""
    metering().work.extend(handles)


def note_model(name: str) -> None:
    """The configured model this request asked for, before it is served (for the log of a refusal)."""
    metering().model = name


def metering() -> Metering:
    """This request's metering record (an empty one until the view reports)."""
    record: Metering | None = g.get("maas_metering")
    if record is None:
        record = g.maas_metering = Metering()
    return record
