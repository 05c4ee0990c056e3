"""Sequence classifiers with their own labels (e.g. distilbert-base-uncased-finetuned-sst-2-english)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer
from transformers.modeling_outputs import SequenceClassifierOutput

from . import explain, onnx_runtime
from .contract import EXPLAIN_LANE, BatchMethod, InvalidInput, Method, ModelDescription
from .embeddings import pooling_mode, sentence_max_length, sentence_vectors
from .explain_io import EXPLAIN_TEXT, Explained, TextExplanation
from .onnx_runtime import TORCH, Gate, choose_forward, text_export, text_sample, top1_agreement, weight_files
from .sentiment_head import ClassificationHead, HeadError, load_head
from .sources import resolve_source
from .text_io import CLASSIFY_TEXT, Scores, TextItem
from .traced import Forward, TextModelOutput, text_forward


@dataclass
class PreparedClassify:
    ids: list[int]
    label_ids: list[int]


class TextClassificationModel:
    """Serves ``/v1/classify/text`` with the model's own label set (``config.id2label``)."""

    task = "text-classification"

    def __init__(self, model: Any, tokenizer: Any, logits: Forward, *, device: str, max_length: int,
                 runtime: str = TORCH) -> None:
        """`logits`: the model's logits from (input_ids, attention_mask): traced or not (traced.py), or on
        ONNX Runtime (`runtime`, onnx_runtime.py). Explanations always run `model`, on torch."""
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.runtime = runtime
        self.dtype = "int8" if runtime == "onnx-int8" else str(model.dtype).removeprefix("torch.")
        self.max_length = max_length
        self.labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
        self._explained: Any = None  # the explain lane's own copy of the network, made on first use
        self._logits = logits

    @classmethod
    def load(cls, config: Any, device: str, dtype: torch.dtype, cache_dir: Path) -> TextClassificationModel:
        """A sequence classifier; or, with `config.head`, a sentence encoder with a trained linear head."""
        path = resolve_source(config.source)
        tokenizer = AutoTokenizer.from_pretrained(path)
        weights = weight_files(path)
        if config.head is not None:
            head = resolve_source(config.head)
            model: Any = HeadedEncoder.load(path, head, dtype)
            weights = (*weights, head) if weights else ()
            limit = config.max_context or sentence_max_length(path, model.encoder, tokenizer)
        else:
            model = AutoModelForSequenceClassification.from_pretrained(path, dtype=dtype)
            limit = config.max_context or min(
                getattr(model.config, "max_position_embeddings", 512) or 512,
                tokenizer.model_max_length if 0 < tokenizer.model_max_length < 10**9 else 512,
            )
        model = model.to(device).eval()
        logits = text_forward(model, "logits", tokenizer, config, device, limit)
        chosen = choose_forward(TextModelOutput(model, "logits"), logits, runtime=config.runtime, name=config.name,
                                device=device, export=lambda: text_export(tokenizer, weights),
                                sample=lambda: text_sample(tokenizer, limit), gate=classifier_gate(),
                                cache_dir=cache_dir)
        return cls(model, tokenizer, chosen.forward, device=device, max_length=limit, runtime=chosen.runtime)

    def describe(self) -> ModelDescription:
        return ModelDescription(device=self.device, dtype=self.dtype, runtime=self.runtime,
                                context_length=self.max_length, labels=tuple(self.labels))

    def batch_methods(self) -> dict[Method[Any, Any], BatchMethod]:
        return {CLASSIFY_TEXT: BatchMethod(self.prepare, self.classify),
                EXPLAIN_TEXT: BatchMethod(self.prepare_explained, self.explain, lane=EXPLAIN_LANE)}

    def warmup(self) -> None:
        self.classify([self.prepare(TextItem("warm-up"))])
        explain.preload()

    def prepare(self, item: TextItem) -> PreparedClassify:
        return self._checked(item, list(self.tokenizer(item.text, truncation=False)["input_ids"]))

    def _checked(self, item: TextItem, ids: list[int]) -> PreparedClassify:
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
        logits = self._logits(enc["input_ids"], enc["attention_mask"]).float()
        results = []
        for row, item in zip(logits, batch):
            # Softmax over the requested labels only, so scores sum to 1 over what is returned.
            scores = torch.softmax(row[item.label_ids], dim=-1).tolist()
            pairs = [(self.labels[i], s) for i, s in zip(item.label_ids, scores)]
            results.append(Scores(sorted(pairs, key=lambda p: -p[1]), len(item.ids)))
        return results

    def prepare_explained(self, item: TextItem) -> tuple[PreparedClassify, explain.TokenizedText]:
        tokens = explain.tokenize_with_offsets(self.tokenizer, item.text)
        return self._checked(item, tokens.ids), tokens

    def explain(self, batch: list[tuple[PreparedClassify, explain.TokenizedText]]) -> list[Explained]:
        """Classify each text and weigh each of its tokens for the top label (integrated gradients)."""
        if self._explained is None:  # a private copy: captum hooks its embedding layer
            self._explained = copy.deepcopy(self.model)
        network = self._explained

        def forward(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return explain.logits_of(network(input_ids=ids, attention_mask=mask))

        results = []
        for prepared, tokens in batch:
            ids = torch.tensor([prepared.ids], device=self.device)
            with torch.no_grad():
                logits = forward(ids, torch.ones_like(ids))[0]
            scores = torch.softmax(logits[prepared.label_ids], dim=-1).tolist()
            ranked = sorted(zip(prepared.label_ids, scores), key=lambda pair: -pair[1])
            top = ranked[0][0]
            weights = explain.explain_tokens(forward, network.get_input_embeddings(), tokens, self._pad_id, top,
                                             self.device)
            results.append(Explained(Scores([(self.labels[i], s) for i, s in ranked], len(prepared.ids)),
                                     TextExplanation(self.labels[top], weights)))
        return results

    @property
    def _pad_id(self) -> int:
        return int(self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0)


def classifier_gate() -> Gate:
    """An ONNX graph serves when it picks torch's top label for MIN_TOP1_AGREEMENT of the sample texts."""
    return Gate("top-label agreement", onnx_runtime.MIN_TOP1_AGREEMENT, top1_agreement)


class HeadedEncoder(torch.nn.Module):
    """A sentence encoder and a trained linear head, with a sequence classifier's interface.

    The logits are the head over the pooled, L2-normalised embedding, exactly the vectors the head
    was trained on (models/sentiment_head.py). Being a classifier like any other, it batches,
    pads and explains (integrated gradients through the encoder's embeddings) the same way.
    """

    weight: torch.Tensor  # buffers: they move with .to(device) and are no parameters
    bias: torch.Tensor

    def __init__(self, encoder: Any, head: ClassificationHead, pooling: str) -> None:
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        self.register_buffer("weight", head.weight.clone())
        self.register_buffer("bias", head.bias.clone())
        self.config = copy.deepcopy(encoder.config)
        self.config.id2label = dict(enumerate(head.labels))  # num_labels follows id2label
        self.config.label2id = {label: i for i, label in enumerate(head.labels)}

    @classmethod
    def load(cls, encoder_path: str, head_path: str, dtype: torch.dtype) -> HeadedEncoder:
        head = load_head(head_path)
        encoder = AutoModel.from_pretrained(encoder_path, dtype=dtype)
        if head.dimensions != encoder.config.hidden_size:
            raise HeadError(f"head {head_path} scores {head.dimensions}-dimensional embeddings, but {encoder_path} "
                            f"makes {encoder.config.hidden_size}-dimensional ones")
        return cls(encoder, head, pooling_mode(encoder_path))

    @property
    def dtype(self) -> torch.dtype:
        return self.encoder.dtype  # type: ignore[no-any-return]

    def get_input_embeddings(self) -> Any:
        return self.encoder.get_input_embeddings()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                **encoder_inputs: Any) -> SequenceClassifierOutput:
        mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
        hidden = self.encoder(input_ids=input_ids, attention_mask=mask, **encoder_inputs).last_hidden_state
        vectors = sentence_vectors(hidden, mask, self.pooling)
        return SequenceClassifierOutput(logits=vectors @ self.weight.T + self.bias)
