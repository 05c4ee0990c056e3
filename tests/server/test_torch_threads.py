"""Request threads that prepare inputs run torch on one thread; runners keep torch's default.

Each thread that runs a parallel torch op under libgomp keeps a team of OpenMP workers, and once
the process has more of them than cores every runner's forward pass slows (runtime/torch_threads.py).
Defaults are read on fresh threads: the main thread is the test run's own and is left alone.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import torch

from maas_server.models.contract import BatchMethod, Method, ModelDescription
from maas_server.runtime.runner import Runner
from maas_server.runtime.torch_threads import _omp_set_num_threads, single_threaded_torch_here

PREPARED: Method[Any, Any] = Method("prepared")



def _on_new_thread(work: Any) -> Any:
    box: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: box.update(value=work()))
    thread.start()
    thread.join(10)
    return box["value"]


def _default() -> int:
    """torch's intra-op threads on a thread that has done nothing yet (as a runner starts)."""
    return int(_on_new_thread(torch.get_num_threads))


needs_openmp_and_cores = pytest.mark.skipif(
    _omp_set_num_threads() is None or _default() < 2,
    reason="needs torch's OpenMP and at least 2 intra-op threads by default")


@needs_openmp_and_cores
def test_only_the_calling_thread_is_limited() -> None:
    default, main = _default(), torch.get_num_threads()

    def limited() -> int:
        single_threaded_torch_here()
        torch.ones(1 << 18).add_(1)  # a parallel-sized op: torch's lazy per-thread set-up must not undo it
        return torch.get_num_threads()

    assert _on_new_thread(limited) == 1
    assert _default() == default  # not a thread started later (a runner)
    single_threaded_torch_here()
    assert torch.get_num_threads() == main  # nor the main thread, the process's own


class _RecordsThreads:
    """prepare runs on the request's thread, run on the runner's: each records torch's threads there."""

    task = "test"

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    def describe(self) -> ModelDescription:
        return ModelDescription(device="cpu", dtype="float32")

    def warmup(self) -> None:
        pass

    def batch_methods(self) -> dict[Method[Any, Any], BatchMethod]:
        return {PREPARED: BatchMethod(self.prepare, self.run, prepare_on_caller=True)}

    def prepare(self, item: int) -> int:
        self.seen["request thread"] = torch.get_num_threads()
        return item

    def run(self, batch: list[int]) -> list[int]:
        self.seen["runner"] = torch.get_num_threads()
        return batch


@needs_openmp_and_cores
def test_a_request_thread_that_prepares_is_limited_and_the_runner_is_not() -> None:
    default = _default()
    model = _RecordsThreads()
    runner = Runner("m", model, max_batch_size=4, max_wait_ms=0).start()  # type: ignore[arg-type]
    try:
        assert _on_new_thread(lambda: runner.submit(PREPARED, 3).result(5)) == 3
    finally:
        runner.stop()
    assert model.seen == {"request thread": 1, "runner": default}
