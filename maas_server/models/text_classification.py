"""Sequence classifiers with their own labels (e.g. distilbert-base-uncased-finetuned-sst-2-english)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from .base import CLASSIFY_TEXT, BatchMethod, InvalidInput, Method, ModelDescription, Scores, TextItem
from .sources import resolve_source


@dataclass
class PreparedClassify:
    ids: list[int]
    label_ids: list[int]


class TextClassificationModel:
    """Serves ``/v1/classify/text`` with the model's own label set (``config.id2label``)."""

    task = "text-classification"

    def __init__(self, model: Any, tokenizer: Any, *, device: str, max_length: int) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.dtype = str(model.dtype).removeprefix("torch.")
        self.max_length = max_length
        self.labels = [model.config.id2label[i] for i in range(model.config.num_labels)]

    @classmethod
    def load(cls, config: Any, device: str, dtype: torch.dtype, cache_dir: Path) -> TextClassificationModel:
        path = resolve_source(config.source)
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(path, dtype=dtype).to(device).eval()
        limit = config.max_context or min(
            getattr(model.config, "max_position_embeddings", 512) or 512,
            tokenizer.model_max_length if 0 < tokenizer.model_max_length < 10**9 else 512,
        )
        return cls(model, tokenizer, device=device, max_length=limit)

    def describe(self) -> ModelDescription:
        return ModelDescription(device=self.device, dtype=self.dtype, context_length=self.max_length,
                                labels=tuple(self.labels))

    def batch_methods(self) -> dict[Method[Any, Any], BatchMethod]:
        return {CLASSIFY_TEXT: BatchMethod(self.prepare, self.classify)}

    def warmup(self) -> None:
        self.classify([self.prepare(TextItem("warm-up"))])

    def prepare(self, item: TextItem) -> PreparedClassify:
        ids = self.tokenizer(item.text, truncation=False)["input_ids"]
        if len(ids) > self.max_length:
            raise InvalidInput(
                f"this model's maximum input length is {self.max_length} tokens, but an input has {len(ids)}",
                param="input", code="context_length_exceeded",
            )
        unknown = [label for label in item.labels if label not in self.labels]
        if unknown:
            raise InvalidInput(
                f"unknown label(s) {unknown}: this model's labels are {self.labels}; omit `labels` to get all",
                param="labels", code="unknown_label",
            )
        label_ids = [self.labels.index(label) for label in item.labels] or list(range(len(self.labels)))
        return PreparedClassify(list(ids), label_ids)

    @torch.inference_mode()
    def classify(self, batch: list[PreparedClassify]) -> list[Scores]:
        enc = self.tokenizer.pad({"input_ids": [p.ids for p in batch]}, return_tensors="pt").to(self.device)
        logits = self.model(**enc).logits.float()
        results = []
        for row, item in zip(logits, batch):
            # Softmax over the requested labels only, so scores sum to 1 over what is returned.
            scores = torch.softmax(row[item.label_ids], dim=-1).tolist()
            pairs = [(self.labels[i], s) for i, s in zip(item.label_ids, scores)]
            results.append(Scores(sorted(pairs, key=lambda p: -p[1]), len(item.ids)))
        return results
