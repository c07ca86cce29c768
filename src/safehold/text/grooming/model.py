"""An optional trainable layer over the stage scorer: logistic regression on per-author features.

The default detector is the stage scorer alone (no file, no training data needed). A platform with labelled data,
such as the PAN-2012 corpus, can train this model and pass it to ``GroomingScorer(model=...)``; it then replaces
the rule risk with a probability learned from the same stage features, the age signals, the rule risk itself and
hashed word unigrams/bigrams (``buckets`` hash buckets).

The model is saved as JSON — feature name -> weight, intercept, bucket count — and never pickled: a model file
supplied by an operator must not be able to execute code when loaded. Prediction is a dot product in pure Python,
so scikit-learn is needed only to train.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from safehold.errors import SafeholdError
from safehold.text.grooming.scorer import GroomingScorer, author_features

if TYPE_CHECKING:
    from safehold.text.grooming.pan2012 import Conversation

FORMAT = "safehold.grooming-model"
FORMAT_VERSION = 1
DEFAULT_BUCKETS = 1 << 14


class GroomingModel:
    def __init__(self, weights: dict[str, float], intercept: float, *, buckets: int = DEFAULT_BUCKETS, meta=None):
        self.weights = weights
        self.intercept = intercept
        self.buckets = buckets
        self.meta = dict(meta or {})

    def predict_author(self, features: dict) -> float:
        """Probability that the author with these features is a groomer."""
        w = self.weights
        z = self.intercept + sum(w.get(k, 0.0) * v for k, v in features.items())
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "buckets": self.buckets,
            "intercept": self.intercept,
            "weights": self.weights,
            "meta": self.meta,
        }

    def save(self, path: str | Path) -> None:
        with open(path, "w", encoding="utf-8", opener=lambda p, f: os.open(p, f, 0o600)) as out:
            out.write(json.dumps(self.to_dict(), sort_keys=True))

    @classmethod
    def load(cls, path: str | Path) -> GroomingModel:
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
            if d.get("format") != FORMAT or d.get("version") != FORMAT_VERSION:
                raise ValueError("not a Safehold grooming model (format/version)")
            weights = {str(k): float(v) for k, v in d["weights"].items()}
            buckets = int(d["buckets"])
            if buckets < 0:
                raise ValueError("buckets must be >= 0")
            return cls(weights, float(d["intercept"]), buckets=buckets, meta=d.get("meta"))
        except FileNotFoundError as exc:
            raise SafeholdError("grooming.model_not_found", f"No such model file: {path}", status=404) from exc
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SafeholdError("grooming.invalid_model", f"Invalid grooming model file {path}: {exc}") from exc


def train(
    conversations: Iterable[Conversation],
    predators: set[str],
    *,
    buckets: int = DEFAULT_BUCKETS,
    c: float = 1.0,
    progress: Callable[[int], None] | None = None,
) -> GroomingModel:
    """Fit logistic regression on one sample per (conversation, author); label = author is in ``predators``.

    ``class_weight="balanced"`` because predators are a small minority (about 1 in 40 authors in PAN-2012's
    training set); ``progress`` is called with the number of conversations processed.
    """
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression

    scorer = GroomingScorer(ngram_buckets=buckets)
    samples: list[dict[str, float]] = []
    labels: list[int] = []
    for done, conv in enumerate(conversations, 1):
        state = scorer.new_state()
        for m in conv.messages:
            scorer.add(state, m)
        for name in state.authors:
            samples.append(author_features(state, name, buckets=buckets))
            labels.append(int(name in predators))
        if progress:
            progress(done)
    if len(set(labels)) < 2:
        raise SafeholdError("grooming.training_labels", "Training needs both predator and non-predator authors.")
    vec = DictVectorizer()
    x = vec.fit_transform(samples)
    clf = LogisticRegression(C=c, class_weight="balanced", max_iter=1000)
    clf.fit(x, labels)
    weights = {name: float(w) for name, w in zip(vec.get_feature_names_out(), clf.coef_[0], strict=True) if w}
    meta = {"samples": len(labels), "positives": sum(labels), "c": c}
    return GroomingModel(weights, float(clf.intercept_[0]), buckets=buckets, meta=meta)
