"""A trained classification head over sentence embeddings: a linear layer and a softmax.

The default head (``heads/sentiment-minilm-l6-v2.safetensors``) scores the L2-normalised MiniLM
embeddings that :mod:`maas_server.models.embeddings` computes as negative / neutral / positive. It
was fitted by ``scripts/train_sentiment_head.py`` (logistic regression on a labelled tweet corpus;
numbers and caveats in docs/sentiment.md). The file holds plain numbers: ``weight`` [labels, dim]
and ``bias`` [labels] in float32, with the label names (a JSON list) and the training provenance
in the safetensors metadata. safetensors never unpickles, so loading a head runs no code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

DEFAULT_SENTIMENT_HEAD = Path(__file__).resolve().parent.parent / "heads" / "sentiment-minilm-l6-v2.safetensors"


class HeadError(ValueError):
    """A head file is missing or malformed; the message says what is wrong with which file."""


@dataclass(frozen=True)
class ClassificationHead:
    """Label names, the linear layer that scores them, and where the numbers came from."""

    labels: tuple[str, ...]
    weight: torch.Tensor  # [labels, dim]
    bias: torch.Tensor  # [labels]
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def dimensions(self) -> int:
        return int(self.weight.shape[1])


def load_head(path: str | Path = DEFAULT_SENTIMENT_HEAD) -> ClassificationHead:
    """Read and check a head file. One ``safe_open`` gives both the tensors and the metadata."""
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
            tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 - safe_open is no dict
    except (OSError, SafetensorError) as exc:  # a missing file, or one that is not safetensors (a pickle...)
        raise HeadError(f"cannot read classification head {path}: {exc}") from exc
    return _checked(path, metadata, tensors)


def _checked(path: str | Path, metadata: dict[str, str], tensors: dict[str, torch.Tensor]) -> ClassificationHead:
    """Refuse a head whose parts do not fit together, at load time rather than at the first request."""
    try:
        names = json.loads(metadata["labels"])
    except (KeyError, json.JSONDecodeError) as exc:
        raise HeadError(f"head {path}: metadata needs `labels`, a JSON list of label names") from exc
    if not isinstance(names, list) or not names or not all(isinstance(x, str) and x for x in names) \
            or len(set(names)) != len(names):
        raise HeadError(f"head {path}: `labels` must be a JSON list of distinct non-empty names, got {names!r}")
    labels = tuple(names)
    weight, bias = tensors.get("weight"), tensors.get("bias")
    if weight is None or bias is None:
        raise HeadError(f"head {path}: needs tensors `weight` and `bias`, has {sorted(tensors)}")
    if weight.dim() != 2 or weight.shape[0] != len(labels) or tuple(bias.shape) != (len(labels),):
        raise HeadError(f"head {path}: weight {tuple(weight.shape)} and bias {tuple(bias.shape)} do not fit "
                        f"{len(labels)} labels (expected [labels, dim] and [labels])")
    if weight.dtype != torch.float32 or bias.dtype != torch.float32:
        raise HeadError(f"head {path}: weight and bias must be float32, got {weight.dtype} and {bias.dtype}")
    if not (torch.isfinite(weight).all() and torch.isfinite(bias).all()):
        raise HeadError(f"head {path}: weight or bias holds NaN or infinity")
    return ClassificationHead(labels, weight, bias, metadata)


def score(head: ClassificationHead, embeddings: torch.Tensor) -> list[list[tuple[str, float]]]:
    """Each embedding's labels with probabilities, best first (the shape of ``Scores.labels``).

    `embeddings` is [batch, dim], L2-normalised as the embeddings model returns them: the head was
    trained on exactly those vectors, so unnormalised ones would give wrong (overconfident) answers.
    """
    if embeddings.dim() != 2 or embeddings.shape[1] != head.dimensions:
        raise ValueError(f"expected embeddings of shape [batch, {head.dimensions}], got {tuple(embeddings.shape)}")
    weight = head.weight.to(embeddings.device)
    bias = head.bias.to(embeddings.device)
    probs = torch.softmax(embeddings.float() @ weight.T + bias, dim=-1).tolist()
    return [sorted(zip(head.labels, row), key=lambda pair: -pair[1]) for row in probs]
