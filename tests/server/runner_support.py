"""A fake model for runner tests: it blocks on Events, never on sleeps."""

from __future__ import annotations

import threading
from typing import Any

from maas_server.models.contract import BatchMethod, InvalidInput, Method, ModelDescription

DOUBLE: Method[Any, Any] = Method("double")
NEGATE: Method[Any, Any] = Method("negate")


class GatedModel:
    """Doubles its inputs in batches; the first batch waits until the test opens the gate."""

    task = "test"

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.started = threading.Event()
        self.batches: list[list[Any]] = []
        self.fail_next = False

    def describe(self) -> ModelDescription:
        return ModelDescription(device="cpu", dtype="float32")

    def batch_methods(self) -> dict[Method[Any, Any], BatchMethod]:
        return {DOUBLE: BatchMethod(self.prepare, self.run), NEGATE: BatchMethod(lambda x: x, self.negate)}

    def warmup(self) -> None:
        pass

    def prepare(self, item: Any) -> Any:
        if item == "bad":
            raise InvalidInput("bad item", param="input")
        return item

    def run(self, batch: list[Any]) -> list[Any]:
        self.started.set()
        self.gate.wait(timeout=10)
        self.batches.append(list(batch))
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("model exploded")
        if "boom" in batch:
            raise RuntimeError("kaboom")  # breaks whatever batch it is in
        if "short" in batch:
            return batch[:-1]  # one output too few
        return [x * 2 for x in batch]

    def negate(self, batch: list[Any]) -> list[Any]:
        self.batches.append(list(batch))
        return [-x for x in batch]
