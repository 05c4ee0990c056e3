"""An encoder's forward pass on ONNX Runtime, fp32 or dynamic int8, kept only where it passes a quality gate.

A model whose config says ``runtime = "onnx"`` or ``"onnx-int8"`` is exported at load with
``torch.onnx.export`` (the TorchScript exporter: no onnxscript, and a few seconds for MiniLM),
quantized for int8 with ONNX Runtime's ``quantize_dynamic`` (int8 weights per output channel,
activations quantized on the fly), and run by an ``InferenceSession`` on the CPU. Why: ONNX
Runtime's fused kernels and its int8 GEMM (VNNI where the CPU has it) do the same work in less
time than torch on a CPU (docs/performance.md, "ONNX Runtime").

Int8 changes the numbers. So before it serves, the exported graph runs a fixed sample beside the
torch model in float32 and must reach the task's :class:`Gate` (mean cosine of sentence vectors,
or top-1 agreement); a graph that cannot be made, or misses the gate, is logged with the figure
and the model serves torch. The exported file is cached under the server's ``cache_dir``, named by
the content of the weights, the runtime and the torch version, so a restart skips the export.

Only the default lane's forward pass runs here: explanations need torch's autograd (captum), so
the adapters keep the torch model loaded and explain on their own copy of it; an image model's
embeddings (its pooled features) also come from the torch model.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .sources import content_key

log = logging.getLogger(__name__)

Inputs = tuple[torch.Tensor, ...]
Forward = Callable[..., torch.Tensor]

TORCH = "torch"
ONNX_CACHE = "onnx"  # the exported graphs' folder under the cache dir
_OPSET = 17
MIN_COSINE = 0.99  # embeddings: mean cosine of the sentence vectors over the sample
MIN_TOP1_AGREEMENT = 0.99  # classifiers: the share of sample inputs whose top label is torch's
_FORMAT = "2"  # bump when the export or quantization settings change: old cache entries are then ignored


@dataclass(frozen=True)
class Gate:
    """What the ONNX graph must reach against torch float32 on the sample before it serves.

    `score(inputs, expected, got)` gives the quality of each row of one sample batch (1.0: the
    same); the gate takes the mean over every row of the sample.
    """

    measure: str  # what `score` computes, as the log says it
    threshold: float
    score: Callable[[Inputs, torch.Tensor, torch.Tensor], torch.Tensor]


def cosine(pooled: Callable[[Inputs, torch.Tensor], torch.Tensor]) -> Callable[..., torch.Tensor]:
    """A score: each row's cosine between the vectors that `pooled(inputs, output)` makes of the outputs."""

    def score(inputs: Inputs, expected: torch.Tensor, got: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cosine_similarity(pooled(inputs, expected.float()), pooled(inputs, got.float()),
                                                     dim=-1)

    return score


def top1_agreement(inputs: Inputs, expected: torch.Tensor, got: torch.Tensor) -> torch.Tensor:
    """A score: 1 for each row whose highest logit is the same label, else 0."""
    return (expected.argmax(dim=-1) == got.argmax(dim=-1)).float()


@dataclass(frozen=True)
class Export:
    """How to export one module: its example inputs (traced once) and their names and variable axes."""

    example: Inputs
    input_names: tuple[str, ...]
    dynamic_axes: Mapping[str, Mapping[int, str]]
    weights: tuple[str, ...] = ()  # files the weights come from: the cache key (none: export at every load)


@dataclass(frozen=True)
class Choice:
    """The forward pass a model serves, the runtime that runs it, and why (for the log)."""

    forward: Forward
    runtime: str
    reason: str


class OnnxForward:
    """An ``InferenceSession`` called like the torch module it was exported from: tensors in, a tensor out."""

    def __init__(self, session: Any, input_names: Sequence[str]) -> None:
        """`input_names`: the module's inputs in order; the exporter drops one the output does not use."""
        self.session = session
        self.input_names = tuple(input_names)
        self._kept = {i.name for i in session.get_inputs()}

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        feed = {name: tensor.detach().cpu().numpy() for name, tensor in zip(self.input_names, inputs)
                if name in self._kept}
        return torch.from_numpy(self.session.run(None, feed)[0])


def choose_forward(module: torch.nn.Module, torch_forward: Forward, *, runtime: str, name: str, device: str,
                   export: Callable[[], Export], sample: Callable[[], Sequence[Inputs]], gate: Gate,
                   cache_dir: Path) -> Choice:
    """The ONNX forward pass for `runtime` when it passes `gate` on `sample`, else `torch_forward`.

    `module` (eval mode, one tensor out) is what is exported and the float32 reference on the
    sample; `torch_forward` (maybe traced) is what serves when ONNX does not. Building the export
    spec and the sample is part of the attempt: any failure means torch, which always works.
    """
    if runtime == TORCH:
        return Choice(torch_forward, TORCH, "configured")
    if device != "cpu":
        return _fallback(torch_forward, name, runtime, f"ONNX Runtime runs here on the CPU only, not {device}")
    dtype = next((p.dtype for p in module.parameters() if p.is_floating_point()), torch.float32)
    if dtype != torch.float32:
        return _fallback(torch_forward, name, runtime, f"it exports float32 models only, not {dtype}")
    try:
        spec = export()
        with tempfile.TemporaryDirectory(prefix="maas-onnx-") as scratch:  # the session holds the graph in memory
            path = _exported(module, spec, runtime, cache_dir, Path(scratch))
            onnx = OnnxForward(_session(path), spec.input_names)
        quality = gate_score(module, onnx, sample(), gate)
    except Exception as exc:  # noqa: BLE001 - any failure means torch, which always works
        return _fallback(torch_forward, name, runtime, f"export failed ({type(exc).__name__}: {exc})")
    figure = f"{gate.measure} {quality:.4f} against torch float32 (gate {gate.threshold})"
    if quality < gate.threshold:
        return _fallback(torch_forward, name, runtime, figure)
    log.info("model %s: serving on ONNX Runtime (%s), %s", name, runtime, figure)
    return Choice(onnx, runtime, figure)


def _fallback(torch_forward: Forward, name: str, runtime: str, why: str) -> Choice:
    log.warning("model %s: serving torch, not %s: %s", name, runtime, why)
    return Choice(torch_forward, TORCH, why)


def gate_score(module: torch.nn.Module, onnx: Forward, sample: Sequence[Inputs], gate: Gate) -> float:
    """The gate's score, the mean over every row of the sample (also warms the session up for its shapes)."""
    scores = []
    with torch.inference_mode():
        for inputs in sample:
            expected, got = module(*inputs), onnx(*inputs)
            if got.shape != expected.shape:
                raise ValueError(f"output shape {tuple(got.shape)} is not torch's {tuple(expected.shape)}")
            scores.append(gate.score(inputs, expected, got))
    return float(torch.cat(scores).mean())


def cache_key(weights: Sequence[str], runtime: str) -> str:
    """16 hex digits naming an export: the weights' content, the runtime, and the exporter's version."""
    digest = hashlib.sha256(f"{_FORMAT}:{runtime}:{torch.__version__}:{_OPSET}".encode())
    for path in weights:
        digest.update(content_key(path).encode())
    return digest.hexdigest()[:16]


def _exported(module: torch.nn.Module, spec: Export, runtime: str, cache_dir: Path, scratch: Path) -> Path:
    """The .onnx file for `runtime`: from the cache when the same weights were exported before."""
    if not spec.weights:  # nothing to key the cache by: exported into `scratch`, deleted once loaded
        return _write(module, spec, runtime, scratch / f"model-{runtime}.onnx")
    folder = cache_dir / ONNX_CACHE
    target = folder / f"{Path(spec.weights[0]).stem}-{cache_key(spec.weights, runtime)}-{runtime}.onnx"
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    log.info("exporting %s for ONNX Runtime (%s), cached as %s", spec.weights[0], runtime, target)
    return _write(module, spec, runtime, target)


def _write(module: torch.nn.Module, spec: Export, runtime: str, target: Path) -> Path:
    """Export (and quantize) into a temporary file beside `target`, then rename: readers never see half a file."""
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".tmp-") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        _export(module, spec, fp32)
        final = fp32
        if runtime == "onnx-int8":
            final = Path(tmp) / "int8.onnx"
            _quantize(fp32, final)
        os.replace(final, target)
    return target


def _export(module: torch.nn.Module, spec: Export, path: Path) -> None:
    # In eval mode before and after: the exporter puts the module back in the mode it found it in, and
    # recursively, so a wrapper made in training mode would switch its model's dropout on.
    module.eval()
    with warnings.catch_warnings(), torch.no_grad():
        # TracerWarnings (branches baked in) and the exporter's deprecation notice: the gate is what
        # checks the graph, on other shapes than the example's.
        warnings.simplefilter("ignore")
        torch.onnx.export(module, spec.example, str(path), dynamo=False, opset_version=_OPSET,
                          input_names=list(spec.input_names), output_names=["output"],
                          dynamic_axes={k: dict(v) for k, v in spec.dynamic_axes.items()}, external_data=False)
    module.eval()


def _quantize(source: Path, target: Path) -> None:
    """Dynamic int8: weights per output channel (per-tensor scales cost MiniLM ~0.005 of cosine), and
    only MatMul and Conv with constant weights (activation x activation products stay float).

    The last MatMul, Gemm or Conv stays float: it is the classifier (a sentiment head over unit-length
    vectors, an image head), a sliver of the work, and where rounding moves a label near a boundary.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(source), load_external_data=False).graph  # nodes in topological order
    last = [node.name for node in graph.node if node.op_type in {"MatMul", "Gemm", "Conv"}][-1:]

    # It logs a line per tensor on the root logger at INFO: hundreds of lines of no use to an operator.
    logging.disable(logging.INFO)
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul", "Conv"], nodes_to_exclude=last,
                         extra_options={"MatMulConstBOnly": True})
    finally:
        logging.disable(logging.NOTSET)


def _session(path: Path) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # As many threads as torch has (the server sets them per worker); one model call at a time.
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    # Its worker threads otherwise spin after each call, waiting for the next: on a server's few cores
    # that takes CPU from the request threads and from every other model.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: its graph-optimizer notes are no news
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])



# -- the text encoders' export and sample

# The sample a text model's graph is checked on: everyday sentences of both sentiments and of no
# sentiment, short and long, questions, negations, numbers, and words a WordPiece vocabulary splits.
SAMPLE_TEXTS = (
    "The hotel staff went out of their way to make us feel welcome.",
    "I waited forty minutes and nobody answered the phone.",
    "The meeting is moved to Thursday at 3 pm.",
    "Not bad at all, though the ending dragged on a little.",
    "Absolutely terrible: it broke after two days and support never replied.",
    "What time does the pharmacy on Baker Street close?",
    "She planted tomatoes, basil and a row of sunflowers along the fence.",
    "I can't say I loved it, but I didn't hate it either.",
    "The quarterly report shows revenue up 12% year over year.",
    "Best purchase I've made all year, worth every penny!",
    "The train was cancelled again, so I missed my daughter's recital.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "Meh.",
    "The lighthouse keeper climbed the spiral stairs each evening to light the lamp before the storm rolled in "
    "from the sea, and he wrote in his logbook about the ships, the gulls and the long winter nights.",
    "Please send the invoice to accounts@example.com by Friday.",
    "Their new album is a bold, weird and wonderful departure.",
)


def text_export(tokenizer: Any, weights: Sequence[str]) -> Export:
    """(input_ids, attention_mask), both of variable batch and length; traced on a padded pair."""
    encoded = tokenizer(list(SAMPLE_TEXTS[:2]), padding=True, return_tensors="pt")
    axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
            "output": {0: "batch"}}
    return Export((encoded["input_ids"], encoded["attention_mask"]), ("input_ids", "attention_mask"), axes,
                  tuple(weights))


def text_sample(tokenizer: Any, max_length: int) -> list[Inputs]:
    """Batches to gate a text graph on: the sample texts padded together, one text alone, and the
    longest input allowed (positions the export example never reached)."""
    word = tokenizer.convert_tokens_to_ids(tokenizer.tokenize("word"))[:1] or [0]
    batches = [list(SAMPLE_TEXTS), [SAMPLE_TEXTS[4]]]
    sample: list[Inputs] = []
    for texts in batches:
        encoded = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        sample.append((encoded["input_ids"], encoded["attention_mask"]))
    longest = tokenizer.pad({"input_ids": [word * max_length, word * 3]}, return_tensors="pt")
    sample.append((longest["input_ids"], longest["attention_mask"]))
    return sample


def weight_files(path: str) -> tuple[str, ...]:
    """The weights files of a local model (a file, or a folder's top-level weights); none for a hub id."""
    source = Path(path)
    if source.is_file():
        return (str(source),)
    if source.is_dir():
        return tuple(str(f) for f in sorted(source.iterdir()) if f.suffix in {".safetensors", ".bin", ".pt", ".pth"})
    return ()
