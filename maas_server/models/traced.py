"""An encoder's forward pass as one TorchScript graph, used only where it matches eager on sample inputs.

Why: an eager forward pass is hundreds of small torch calls, and each one lets go of the GIL and
takes it back. A server's request threads run Python all the while (parsing, validating,
serializing), so each take-back can wait for a thread's switch interval, and meanwhile torch's
OpenMP workers spin. A traced graph runs in C++ and takes the GIL back once per call: MiniLM's
batch of 16 embedded in 47-48 ms traced against 61-62 eager alone, and in 69-75 against 94-107
beside four busy Python threads (docs/performance.md, "Traced encoders").

``torch.jit.trace`` records one run, so a branch on the example's data or shape is baked in. That
is why the graph is run on check inputs of other shapes (other batch sizes, padding, long inputs)
and kept only when every output matches eager within a tolerance; otherwise the model serves
eager, with a warning in the log. TorchScript is deprecated in torch 2.14 (a FutureWarning); when
a torch release drops it, tracing fails and every model serves eager, as with ``trace = false``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch

log = logging.getLogger(__name__)

Inputs = tuple[torch.Tensor, ...]
Forward = Callable[..., torch.Tensor]


def wants_trace(setting: bool | None, device: str) -> bool:
    """The config's ``trace`` (None: on for CPU, where it was measured; off elsewhere)."""
    return device == "cpu" if setting is None else setting


def traced_forward(module: torch.nn.Module, make_checks: Callable[[], Sequence[Inputs]], *, name: str,
                   freeze: bool = False) -> Forward:
    """`module` (in eval mode, returning one tensor) as a traced graph, or `module` itself when the
    graph cannot be made or differs from eager on any of the inputs `make_checks` returns. The
    first of them is the one traced; building them is part of the attempt (a tokenizer that
    cannot pad fails it, and the model serves eager as before).

    freeze: also inline the weights and fold batch norms into convolutions, with
    ``optimize_for_inference`` (oneDNN layouts): 1.3-1.7x faster for the CNN image classifiers,
    slower for a BERT batch of 32, so it is for convolutional networks.
    """
    try:
        checks = make_checks()
        graph = _trace(module, checks[0], freeze)
        mismatch = _first_mismatch(module, graph, checks)
    except Exception as exc:  # noqa: BLE001 - any failure means eager, which always works
        log.warning("model %s: serving the eager forward pass; tracing failed (%s: %s)", name,
                    type(exc).__name__, exc)
        return module
    if mismatch is not None:
        log.warning("model %s: serving the eager forward pass; the traced graph differs from it on %s",
                    name, mismatch)
        return module
    log.info("model %s: forward pass traced%s, checked on %d input shapes", name, " and frozen" if freeze else "",
             len(checks))
    return graph


class TextModelOutput(torch.nn.Module):
    """A transformers text model called with (input_ids, attention_mask), returning one field of its
    output (``last_hidden_state``, ``logits``): one tensor out, the shape ``torch.jit.trace`` records."""

    def __init__(self, model: torch.nn.Module, field: str) -> None:
        super().__init__()
        self.model = model
        self.field = field

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        output: torch.Tensor = getattr(self.model(input_ids=input_ids, attention_mask=attention_mask), self.field)
        return output


def text_forward(model: torch.nn.Module, field: str, tokenizer: Any, config: Any, device: str,
                 max_length: int) -> Forward:
    """`model`'s output `field` from (input_ids, attention_mask): a traced graph when the config's
    ``trace`` asks for it (:func:`wants_trace`) and the graph matches eager on padded batches."""
    eager = TextModelOutput(model, field)
    if not wants_trace(config.trace, device):
        return eager
    return traced_forward(eager, lambda: padded_text_checks(tokenizer, device, max_length), name=config.name)


def padded_text_checks(tokenizer: Any, device: str, max_length: int) -> list[Inputs]:
    """(input_ids, attention_mask) pairs for a text encoder: a batch of 1 (small, to trace with),
    a padded batch of 3, and a batch holding the longest input allowed."""
    word = tokenizer.convert_tokens_to_ids(tokenizer.tokenize("word"))[:1] or [0]
    checks: list[Inputs] = []
    for lengths in ([3], [1, 9, 5], [max_length, 2]):
        encoded = tokenizer.pad({"input_ids": [word * n for n in lengths]}, return_tensors="pt").to(device)
        checks.append((encoded["input_ids"], encoded["attention_mask"]))
    return checks


def _trace(module: torch.nn.Module, example: Inputs, freeze: bool) -> Forward:
    with warnings.catch_warnings():
        # The FutureWarning (deprecation) and TracerWarnings (branches baked in) are what the
        # checks against eager below are for; they would only alarm whoever reads the log.
        warnings.simplefilter("ignore")
        with torch.no_grad():
            graph = torch.jit.trace(module, example, check_trace=False)  # type: ignore[no-untyped-call]
            if freeze:
                graph = torch.jit.optimize_for_inference(torch.jit.freeze(graph.eval()))
    return graph  # type: ignore[no-any-return]


def _first_mismatch(module: torch.nn.Module, graph: Forward, checks: Sequence[Inputs]) -> str | None:
    """A description of the first check input whose outputs differ, or None when all agree.

    These calls also profile and optimize the graph for the shapes they run, before any request.
    """
    rtol, atol = _tolerance(module)
    with torch.inference_mode():
        for inputs in checks:
            expected, got = module(*inputs), graph(*inputs)
            if got.shape != expected.shape or not torch.allclose(got.float(), expected.float(), rtol, atol):
                shapes = ", ".join(str(tuple(t.shape)) for t in inputs)
                return f"inputs of shape {shapes}"
    return None


def _tolerance(module: torch.nn.Module) -> tuple[float, float]:
    """(rtol, atol) for the module's precision: folding and fused kernels reorder float sums,
    ~1e-5 apart in float32 (measured), more in half precision."""
    dtype = next((p.dtype for p in module.parameters() if p.is_floating_point()), torch.float32)
    return (1e-3, 1e-4) if dtype == torch.float32 else (2e-2, 2e-2)
