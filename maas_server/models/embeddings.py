"""Sentence embeddings (sentence-transformers folders, BERT-like HF ids) and zero-shot labels.

The embedding is the pooled last hidden state (mean over real tokens by default, or the [CLS]
token when the folder's ``1_Pooling/config.json`` says so), L2-normalized. Zero-shot text
classification scores each label by cosine similarity to the text, softmaxed over the labels.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModel, AutoTokenizer

from . import onnx_runtime
from .contract import BatchMethod, InvalidInput, Method, ModelDescription
from .onnx_runtime import TORCH, Gate, cosine, text_export, text_sample, weight_files
from .sources import resolve_source
from .text_io import EMBED, ZERO_SHOT_TEXT, Scores, TextItem, TokenIds, Vector
from .traced import Forward, TextModelOutput, text_forward

_LABEL_CACHE_SIZE = 4096


@dataclass
class PreparedText:
    ids: list[int]
    labels: tuple[str, ...] = ()


class EmbeddingModel:
    """Serves ``/v1/embeddings`` and zero-shot ``/v1/classify/text``."""

    task = "embeddings"

    def __init__(self, model: Any, tokenizer: Any, hidden: Forward, *, device: str, pooling: str, max_length: int,
                 zero_shot_scale: float, runtime: str = TORCH) -> None:
        """`hidden`: the last hidden state from (input_ids, attention_mask): traced or not (traced.py), or
        on ONNX Runtime (`runtime`, onnx_runtime.py)."""
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.runtime = runtime
        self.dtype = "int8" if runtime == "onnx-int8" else str(model.dtype).removeprefix("torch.")
        self.pooling = pooling
        self.max_length = max_length
        self.zero_shot_scale = zero_shot_scale
        self.dimensions = int(model.config.hidden_size)
        self._label_vectors: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._hidden = hidden

    @classmethod
    def load(cls, config: Any, device: str, dtype: torch.dtype, cache_dir: Path) -> EmbeddingModel:
        path = resolve_source(config.source)
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModel.from_pretrained(path, dtype=dtype).to(device).eval()
        max_length = config.max_context or sentence_max_length(path, model, tokenizer)
        pooling = pooling_mode(path)
        hidden = text_forward(model, "last_hidden_state", tokenizer, config, device, max_length)
        chosen = onnx_runtime.choose_forward(
            TextModelOutput(model, "last_hidden_state"), hidden, runtime=config.runtime, name=config.name,
            device=device, export=lambda: text_export(tokenizer, weight_files(path)),
            sample=lambda: text_sample(tokenizer, max_length), gate=embedding_gate(pooling), cache_dir=cache_dir)
        return cls(model, tokenizer, chosen.forward, device=device, pooling=pooling, max_length=max_length,
                   zero_shot_scale=config.zero_shot_scale, runtime=chosen.runtime)

    def describe(self) -> ModelDescription:
        return ModelDescription(device=self.device, dtype=self.dtype, runtime=self.runtime,
                                context_length=self.max_length, dimensions=self.dimensions)

    def batch_methods(self) -> dict[Method[Any, Any], BatchMethod]:
        return {
            EMBED: BatchMethod(self.prepare_text, self.embed),
            ZERO_SHOT_TEXT: BatchMethod(self.prepare_zero_shot, self.classify),
        }

    def warmup(self) -> None:
        self.embed([self.prepare_text("warm-up")])

    def prepare_text(self, text: str | TokenIds) -> PreparedText:
        if isinstance(text, TokenIds):
            ids = self._token_ids(text)
        else:
            ids = self.tokenizer(text, truncation=False)["input_ids"]
        if len(ids) > self.max_length:
            raise InvalidInput(
                f"this model's maximum input length is {self.max_length} tokens, but an input has "
                f"{len(ids)}; split or shorten it",
                param="input", code="context_length_exceeded",
            )
        return PreparedText(list(ids))

    def _token_ids(self, given: TokenIds) -> list[int]:
        """Ids sent as they are (no special tokens added), as long as this vocabulary has them."""
        if not given.ids:
            raise InvalidInput("an input of token ids is empty", param="input", code="invalid_value")
        vocabulary = len(self.tokenizer)
        if max(given.ids) >= vocabulary:
            raise InvalidInput(f"token id {max(given.ids)} is not in this model's vocabulary of {vocabulary}; "
                               f"token ids must come from the model's own tokenizer", param="input",
                               code="invalid_value")
        return list(given.ids)

    def prepare_zero_shot(self, item: TextItem) -> PreparedText:
        if not item.labels:
            raise InvalidInput("zero-shot classification needs `labels`: the candidate labels to score",
                               param="labels", code="labels_required")
        return PreparedText(self.prepare_text(item.text).ids, item.labels)

    @torch.inference_mode()
    def embed(self, batch: list[PreparedText]) -> list[Vector]:
        vectors = self._vectors([p.ids for p in batch]).tolist()
        return [Vector(values, len(p.ids)) for values, p in zip(vectors, batch)]

    @torch.inference_mode()
    def classify(self, batch: list[PreparedText]) -> list[Scores]:
        texts = self._vectors([p.ids for p in batch])
        results = []
        for vector, item in zip(texts, batch):
            labels = self._label_matrix(item.labels)
            scores = torch.softmax(self.zero_shot_scale * (labels @ vector), dim=-1)
            results.append(Scores(sorted(zip(item.labels, scores.tolist()), key=lambda p: -p[1]), len(item.ids)))
        return results

    def _vectors(self, ids: list[list[int]]) -> torch.Tensor:
        enc = self.tokenizer.pad({"input_ids": ids}, return_tensors="pt").to(self.device)
        return sentence_vectors(self._hidden(enc["input_ids"], enc["attention_mask"]), enc["attention_mask"],
                                self.pooling)

    def _label_matrix(self, labels: tuple[str, ...]) -> torch.Tensor:
        """Label embeddings, cached: the same label sets come back request after request."""
        missing = [label for label in dict.fromkeys(labels) if label not in self._label_vectors]
        if missing:
            ids = [self.prepare_text(label).ids for label in missing]
            for label, vector in zip(missing, self._vectors(ids)):
                self._label_vectors[label] = vector
        for label in labels:
            self._label_vectors.move_to_end(label)
        while len(self._label_vectors) > _LABEL_CACHE_SIZE:
            self._label_vectors.popitem(last=False)
        return torch.stack([self._label_vectors[label] for label in labels])


def sentence_vectors(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """One L2-normalised vector per sequence: the [CLS] state, or the mean over real tokens."""
    hidden = hidden.float()
    if pooling == "cls":
        pooled = hidden[:, 0]
    else:
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
    return torch.nn.functional.normalize(pooled, dim=-1)


def embedding_gate(pooling: str) -> Gate:
    """An ONNX graph serves when its sentence vectors keep a mean cosine of MIN_COSINE with torch's."""
    return Gate("mean cosine of the sentence vectors", onnx_runtime.MIN_COSINE,
                cosine(lambda inputs, hidden: sentence_vectors(hidden, inputs[1], pooling)))


def pooling_mode(path: str) -> str:
    config = Path(path) / "1_Pooling" / "config.json"
    if config.is_file() and json.loads(config.read_text()).get("pooling_mode_cls_token"):
        return "cls"
    return "mean"


def sentence_max_length(path: str, model: Any, tokenizer: Any) -> int:
    st_config = Path(path) / "sentence_bert_config.json"
    if st_config.is_file():
        value = json.loads(st_config.read_text()).get("max_seq_length")
        if isinstance(value, int) and value > 0:
            return value
    limits = [getattr(model.config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
    return min(v for v in limits if isinstance(v, int) and 0 < v < 10**9) if any(
        isinstance(v, int) and 0 < v < 10**9 for v in limits) else 512
