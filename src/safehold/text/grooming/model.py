"""The learned layer of the grooming detector: logistic regression over a participant's features (``features``).

Safehold ships one such model, trained on real conversations (Perverted-Justice offender logs and several public
benign chat corpora; ``scripts/train_grooming_model.py`` lists each source with its commit and licence) and used by
default. An operator can train their own on a PAN-2012-format corpus (``safehold text train``) and point
``SAFEHOLD_GROOMING_MODEL`` at it.

Why this shape: the model must score a conversation message by message at tens of thousands of messages per second
with a bounded state. A linear model over the *shrunken mean* of hashed n-gram vectors is exactly a running sum of
per-message scores, so adding a message costs one weight look-up per word and bigram and the state keeps one float
per participant (``features`` explains the features).

Samples: a participant is seen at several points of each training conversation (after 8, 16, 32, … messages and at
the end), with the features they had then, so the model learns to recognise an offender early in a conversation and
not only from a whole log.

The file is JSON — named weights, intercept, shrink and the text weights as a base64 little-endian float32 array —
and never pickle: a model file supplied by an operator must not be able to execute code when loaded. Prediction
needs neither numpy nor scikit-learn; training needs scikit-learn (the ``train`` extra).
"""

from __future__ import annotations

import base64
import functools
import json
import math
import os
import sys
import zlib
from array import array
from collections.abc import Callable, Iterable
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

from safehold.errors import SafeholdError
from safehold.text.grooming.features import CHARS, QUESTIONS, SHRINK, dot, message_vector, word_grams

if TYPE_CHECKING:
    from safehold.text.grooming.pan2012 import Conversation
    from safehold.text.terms import TermList

FORMAT = "safehold.grooming-model"
FORMAT_VERSION = 2
DEFAULT_BUCKETS = 1 << 18
DEFAULT_C = 30.0  # chosen on validation data (scripts/train_grooming_model.py --c)
SNAPSHOTS = (8, 16, 32, 64, 128, 256, 512, 1024, 2048)
SHIPPED = "default_model.json"
WORD_CACHE = 1 << 16
DEFAULT_ALERT_THRESHOLD = 0.7  # the configured default (settings.grooming_alert_threshold)


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


class GroomingModel:
    def __init__(
        self,
        weights: dict[str, float],
        text: array,
        intercept: float,
        *,
        shrink: float = SHRINK,
        chars: int = CHARS,
        meta: dict | None = None,
    ):
        if not len(text):
            raise ValueError("the text weights are empty")
        self.weights = weights
        self.text = text
        self.buckets = len(text)
        self.intercept = intercept
        self.shrink = shrink
        self.chars = chars
        self.meta = dict(meta or {})
        # word -> (summed weight of its own grams, how many, its crc32, b" word"): chat vocabulary is Zipfian, so
        # most words of a message were seen before and cost one dict look-up instead of hashing them again.
        self._words: dict[str, tuple[float, int, int, bytes]] = {}

    @classmethod
    @functools.cache
    def default(cls) -> GroomingModel:
        """The model that ships in the package (read once per process)."""
        return cls.load(files("safehold.text.grooming") / SHIPPED)

    def message_score(self, norm: str) -> float:
        """``w · x`` for one message's normalised text (``features.message_vector``): its contribution to its
        author's running text sum. One pass over the words (this is the scorer's hottest loop)."""
        get, word = self._words.get, self._word
        crc32 = zlib.crc32
        seen: set[str] = set()
        bigrams: set[int] = set()
        total = 0.0
        count = 0
        prev = None
        for w in norm.split():
            hit = get(w) or word(w)
            if w not in seen:
                seen.add(w)
                total += hit[0]
                count += hit[1]
            if prev is not None:
                bigrams.add(crc32(hit[3], prev))
            prev = hit[2]
        if bigrams:
            t, b = self.text, self.buckets
            total += sum([t[g % b] for g in bigrams])
            count += len(bigrams)
        return total / math.sqrt(count) if count else 0.0

    def _word(self, w: str) -> tuple[float, int, int, bytes]:
        """A word not in the cache: its grams' summed weight and count, its crc32 and its bigram suffix."""
        e = w.encode()
        h = zlib.crc32(e)
        if self.chars:
            gs = word_grams(w, self.chars)
            hit = (sum([self.text[g % self.buckets] for g in gs]), len(gs), h, b" " + e)
        else:
            hit = (self.text[h % self.buckets], 1, h, b" " + e)
        if len(self._words) >= WORD_CACHE:
            self._words.clear()
        self._words[w] = hit
        return hit

    def predict(self, features: dict[str, float], text_sum: float, messages: int) -> float:
        """Probability that the participant with these behaviour features and running text sum is an offender."""
        z = self.intercept + dot(self.weights, features.items()) + text_sum / (messages + self.shrink)
        return _sigmoid(z)

    def static_score(self, features: dict[str, float]) -> float:
        """The part of ``predict``'s sum that changes only with stages and ages: the scorer caches it, so that a
        message without a cue costs one look-up per gram and one division (``risk``)."""
        return self.intercept + dot(self.weights, ((k, v) for k, v in features.items() if k != QUESTIONS))

    def risk(self, static: float, text_sum: float, questions: int, messages: int) -> float:
        """``predict`` from the cached part: the question rate is ``questions / (messages + shrink)``, so its
        weight joins the running text sum."""
        rate = (text_sum + self.weights.get(QUESTIONS, 0.0) * questions) / (messages + self.shrink)
        return _sigmoid(static + rate)

    def calibrated(self, threshold: float, to: float) -> GroomingModel:
        """The same model with its intercept moved so that a risk of ``to`` means what ``threshold`` meant: lets the
        alert threshold chosen on validation data become the configured default without changing the setting."""
        shift = _logit(to) - _logit(threshold)
        meta = {**self.meta, "calibration": {"threshold": threshold, "maps_to": to}}
        return GroomingModel(
            self.weights, self.text, self.intercept + shift, shrink=self.shrink, chars=self.chars, meta=meta
        )

    def to_dict(self) -> dict:
        text = array("f", self.text)
        if sys.byteorder != "little":
            text.byteswap()
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "buckets": self.buckets,
            "shrink": self.shrink,
            "chars": self.chars,
            "intercept": self.intercept,
            "weights": self.weights,
            "text_weights": base64.b64encode(text.tobytes()).decode("ascii"),
            "meta": self.meta,
        }

    def save(self, path: str | Path) -> None:
        with open(path, "w", encoding="utf-8", opener=lambda p, f: os.open(p, f, 0o600)) as out:
            out.write(json.dumps(self.to_dict(), sort_keys=True))

    @classmethod
    def load(cls, path) -> GroomingModel:
        try:
            d = json.loads(path.read_text(encoding="utf-8") if hasattr(path, "read_text") else Path(path).read_text())
            if not isinstance(d, dict) or d.get("format") != FORMAT:
                raise ValueError("not a Safehold grooming model")
            if d.get("version") != FORMAT_VERSION:
                raise ValueError(f"model version {d.get('version')!r}; retrain it with `safehold text train`")
            text = array("f")
            text.frombytes(base64.b64decode(d["text_weights"], validate=True))
            if sys.byteorder != "little":
                text.byteswap()
            if len(text) != int(d["buckets"]):
                raise ValueError("text_weights does not hold `buckets` weights")
            weights = {str(k): float(v) for k, v in d["weights"].items()}
            shrink = float(d["shrink"])
            if not shrink > 0:
                raise ValueError("shrink must be > 0")
            chars = int(d["chars"])
            if chars < 0:
                raise ValueError("chars must be >= 0")
            return cls(weights, text, float(d["intercept"]), shrink=shrink, chars=chars, meta=d.get("meta"))
        except FileNotFoundError as exc:
            raise SafeholdError("grooming.model_not_found", f"No such model file: {path}", status=404) from exc
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SafeholdError("grooming.invalid_model", f"Invalid grooming model file {path}: {exc}") from exc


def _training_libraries():
    """scipy's sparse matrices and scikit-learn's estimators, or a clear error: scoring needs neither."""
    try:
        from scipy import sparse
        from sklearn.feature_extraction import DictVectorizer
        from sklearn.linear_model import LogisticRegression
    except ImportError as exc:
        raise SafeholdError(
            "grooming.training_unavailable", "Training needs scikit-learn: pip install 'safehold[train]'."
        ) from exc
    return sparse, DictVectorizer, LogisticRegression


def samples(
    conversations: Iterable[Conversation],
    predators: set[str],
    *,
    buckets: int = DEFAULT_BUCKETS,
    shrink: float = SHRINK,
    chars: int = CHARS,
    cues: TermList | None = None,
    progress: Callable[[int], None] | None = None,
):
    """The training matrix: one row per (participant, snapshot) — see the module docstring.

    Returns ``(named, text, labels)``: the behaviour features (list of dicts), the shrunken-mean text vectors
    (scipy CSR, ``buckets`` columns) and the 0/1 labels."""
    sparse = _training_libraries()[0]

    from safehold.text.grooming.scorer import GroomingScorer, author_features
    from safehold.text.normalize import MAX_TEXT, normalize

    scorer = GroomingScorer(cues=cues, rules_only=True)
    named: list[dict[str, float]] = []
    blocks = []
    labels: list[int] = []
    for done, conv in enumerate(conversations, 1):
        state = scorer.new_state()
        start = len(named)
        cols: list[int] = []
        vals: list[float] = []
        ptr = [0]
        by_author: dict[str, list[int]] = {}
        sel_rows: list[int] = []
        sel_cols: list[int] = []
        sel_vals: list[float] = []
        stops = {s for s in SNAPSHOTS if s < len(conv.messages)} | {len(conv.messages)}
        for i, m in enumerate(conv.messages):
            scorer.add(state, m)
            idx, v = message_vector(normalize(m.text[:MAX_TEXT]), buckets, chars)
            cols.extend(idx)
            vals.extend([v] * len(idx))
            ptr.append(len(cols))
            by_author.setdefault(m.author, []).append(i)
            if i + 1 in stops:
                for name, own in by_author.items():
                    if name not in state.authors:
                        continue
                    named.append(author_features(state, name, shrink=shrink))
                    labels.append(int(name in predators))
                    r = len(named) - 1
                    sel_rows.extend([r] * len(own))
                    sel_cols.extend(own)
                    sel_vals.extend([1.0 / (len(own) + shrink)] * len(own))
        if progress:
            progress(done)
        if not sel_rows:
            continue
        msgs = sparse.csr_matrix((vals, cols, ptr), shape=(len(conv.messages), buckets))
        sel = sparse.csr_matrix(
            (sel_vals, ([r - start for r in sel_rows], sel_cols)), shape=(len(named) - start, len(conv.messages))
        )
        blocks.append((sel @ msgs).tocsr())
    text = sparse.vstack(blocks, format="csr") if blocks else sparse.csr_matrix((0, buckets))
    return named, text, labels


def fit(
    named, text, labels, *, c: float = DEFAULT_C, shrink: float = SHRINK, chars: int = CHARS, meta: dict | None = None
) -> GroomingModel:
    """Logistic regression on the rows of :func:`samples`; ``class_weight="balanced"`` because offenders are a
    small minority of participants."""
    sparse, DictVectorizer, LogisticRegression = _training_libraries()
    if len(set(labels)) < 2:
        raise SafeholdError("grooming.training_labels", "Training needs both predator and non-predator authors.")
    vec = DictVectorizer()
    x = sparse.hstack([vec.fit_transform(named), text], format="csr")
    clf = LogisticRegression(C=c, class_weight="balanced", max_iter=2000)
    clf.fit(x, labels)
    coef = clf.coef_[0]
    names = list(vec.get_feature_names_out())
    weights = {n: float(w) for n, w in zip(names, coef[: len(names)], strict=True) if w}
    text_weights = array("f", coef[len(names) :].astype("float32").tobytes())
    meta = {"samples": len(labels), "positives": int(sum(labels)), "c": c, **(meta or {})}
    return GroomingModel(weights, text_weights, float(clf.intercept_[0]), shrink=shrink, chars=chars, meta=meta)


def train(
    conversations: Iterable[Conversation],
    predators: set[str],
    *,
    buckets: int = DEFAULT_BUCKETS,
    c: float = DEFAULT_C,
    shrink: float = SHRINK,
    chars: int = CHARS,
    alert_threshold: float = DEFAULT_ALERT_THRESHOLD,
    calibration_share: float = 0.2,
    cues: TermList | None = None,
    progress: Callable[[int], None] | None = None,
) -> GroomingModel:
    """Fit a model on labelled conversations (label = the author is in ``predators``) and calibrate it.

    ``calibration_share`` of the conversations (chosen by a hash of their id, so the same every run) are held out
    of the fit; the threshold with the best F0.5 on them becomes risk ``alert_threshold``
    (:meth:`GroomingModel.calibrated`), so the model alerts where held-out data says it should at the configured
    threshold. Without offenders and others among them, the model is left uncalibrated. ``progress`` is called with
    the number of conversations processed (fitted, then held out)."""
    from safehold.text.grooming.evaluate import best_threshold, trace
    from safehold.text.grooming.scorer import GroomingScorer

    convs = list(conversations)
    held = [cv for cv in convs if _share(cv.id) < calibration_share]
    used = [cv for cv in convs if _share(cv.id) >= calibration_share] or convs
    named, text, labels = samples(
        used, predators, buckets=buckets, shrink=shrink, chars=chars, cues=cues, progress=progress
    )
    model = fit(named, text, labels, c=c, shrink=shrink, chars=chars)
    held_authors = {m.author for cv in held for m in cv.messages}
    if not (held_authors & predators and held_authors - predators):
        return model
    after = (lambda n: progress(len(used) + n)) if progress else None
    t = trace(GroomingScorer(cues=cues, model=model), held, progress=after)
    return model.calibrated(best_threshold(t, predators), alert_threshold)


def _share(conversation_id: str) -> float:
    return zlib.crc32(conversation_id.encode()) / 2**32
