"""The grooming detector on real conversations it never saw: Perverted-Justice offenders (the train-allowed half,
``shared/data/grooming/pj_split.py``) mixed with every benign source of ``scripts/grooming_data.py``.

Three measures, in one run, on splits grouped by offender (an offender's conversation is in one part only):

- **shipped**: the model in the package, at the default threshold (0.7), on the *test* part of
  ``grooming_data.part`` — the model was fitted on the train part and calibrated on the validation part by
  ``scripts/train_grooming_model.py``; the test part was used by neither. Also the stage rules alone
  (``rules_only``, the previous default) on the same conversations.
- **train_70_30**: ``model.train`` (what ``safehold text train`` runs, calibration included) on a grouped 70 % of
  all the train-allowed data, measured at 0.7 on the other 30 %.
- **baseline**: the peer — a plain TF-IDF (word 1-2-grams) + logistic regression over each author's whole
  conversation, trained and measured on the same 70/30 split; its threshold is the one with the best F0.5 on the
  fitted authors' held-out fifth, as for ``train``. It sees each conversation whole (no early alert is possible),
  so it has no latency figures.

Figures: author-level precision / recall / F0.5 (PAN-2012; offenders are positive, everyone else — decoys
included — negative), latency (messages until the alert, share of offenders flagged before the midpoint of their
conversation), false positives per negative source, and the scorer's messages/s.

Usage: ``.venv/bin/python bench/grooming.py --sources DIR [--out bench/results/grooming.json]`` (DIR as for the
training script; scikit-learn for the 70/30 and baseline parts).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "scripts"))

import grooming_data as data  # noqa: E402

from machine_info import machine  # noqa: E402
from safehold.text.grooming.evaluate import f_beta, score, trace  # noqa: E402
from safehold.text.grooming.model import GroomingModel, train  # noqa: E402
from safehold.text.grooming.scorer import GroomingScorer  # noqa: E402

THRESHOLD = 0.7
SALT_70_30 = "safehold-grooming-bench-70-30-v1"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def measured(scorer: GroomingScorer, conversations, offenders) -> dict:
    t = trace(scorer, conversations)
    out = score(t, offenders, THRESHOLD)
    out["messages_per_second"] = round(t.messages / t.seconds) if t.seconds else None
    return out


def baseline(fit_part, test_part, offenders) -> dict:
    """TF-IDF + logistic regression on whole-conversation author documents."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    def documents(conversations):
        docs: dict[str, list[str]] = {}
        source: dict[str, str] = {}
        for c in conversations:
            for m in c.messages:
                docs.setdefault(m.author, []).append(m.text)
                source.setdefault(m.author, c.source)
        names = sorted(docs)
        return names, ["\n".join(docs[n]) for n in names], [int(n in offenders) for n in names], source

    held = [c for c in fit_part if data.grouped(c.id, 0.2, SALT_70_30 + "-calibration")]
    rest = [c for c in fit_part if not data.grouped(c.id, 0.2, SALT_70_30 + "-calibration")]
    _, fit_docs, fit_y, _ = documents(rest)
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=500_000)
    clf = LogisticRegression(C=10.0, class_weight="balanced", max_iter=2000)
    clf.fit(vec.fit_transform(fit_docs), fit_y)
    _, held_docs, held_y, _ = documents(held)
    held_p = clf.predict_proba(vec.transform(held_docs))[:, 1]
    threshold = max(
        sorted(set(held_p)),
        key=lambda th: f_beta(*_pr([p >= th for p in held_p], held_y), 0.5),
    )
    names, docs, y, source = documents(test_part)
    flagged = [bool(p >= threshold) for p in clf.predict_proba(vec.transform(docs))[:, 1]]
    precision, recall = _pr(flagged, y)
    by_source: dict[str, dict] = {}
    for n, f, label in zip(names, flagged, y, strict=True):
        if not label:
            row = by_source.setdefault(source[n], {"authors": 0, "flagged": 0})
            row["authors"] += 1
            row["flagged"] += f
    return {
        "threshold": round(float(threshold), 4),
        "authors": len(names),
        "predators": sum(y),
        "tp": int(sum(f and label for f, label in zip(flagged, y, strict=True))),
        "fp": int(sum(f and not label for f, label in zip(flagged, y, strict=True))),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f0_5": round(f_beta(precision, recall, 0.5), 4),
        "false_positives_by_source": dict(sorted(by_source.items())),
    }


def _pr(flagged, labels) -> tuple[float, float]:
    tp = sum(f and y for f, y in zip(flagged, labels, strict=True))
    fp = sum(f and not y for f, y in zip(flagged, labels, strict=True))
    pos = sum(labels)
    return (tp / (tp + fp) if tp + fp else 0.0), (tp / pos if pos else 0.0)


def composition(conversations, offenders) -> dict:
    out: dict[str, dict] = {}
    for c in conversations:
        row = out.setdefault(c.source, {"conversations": 0, "messages": 0, "authors": 0, "offenders": 0})
        authors = {m.author for m in c.messages}
        row["conversations"] += 1
        row["messages"] += len(c.messages)
        row["authors"] += len(authors - offenders)
        row["offenders"] += len(authors & offenders)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sources", type=Path, default=REPO / "var" / "grooming-sources")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "grooming.json")
    p.add_argument("--skip-training", action="store_true", help="only the shipped model and the rules")
    args = p.parse_args()

    conversations, offenders = data.load(args.sources)
    test = [c for c in conversations if data.part(c.id) == "test"]
    log(f"{len(conversations)} conversations; test part {len(test)}")
    shipped = GroomingModel.default()
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "sources": [vars(s) for s in data.SOURCES],
        "threshold": THRESHOLD,
        "shipped": {
            "model": {k: shipped.meta.get(k) for k in ("trained", "c", "calibration", "validation")},
            "test_composition": composition(test, offenders),
            "model_figures": measured(GroomingScorer(model=shipped), test, offenders),
            "rules_only": measured(GroomingScorer(rules_only=True), test, offenders),
        },
    }
    log(f"shipped: {json.dumps(result['shipped']['model_figures'])}")
    if not args.skip_training:
        fit_part = [c for c in conversations if data.grouped(c.id, 0.7, SALT_70_30)]
        held = [c for c in conversations if not data.grouped(c.id, 0.7, SALT_70_30)]
        start = time.perf_counter()
        model = train(fit_part, offenders)
        trained_seconds = time.perf_counter() - start
        result["train_70_30"] = {
            "composition": {"train": composition(fit_part, offenders), "test": composition(held, offenders)},
            "train_seconds": round(trained_seconds, 1),
            "figures": measured(GroomingScorer(model=model), held, offenders),
        }
        log(f"70/30: {json.dumps(result['train_70_30']['figures'])}")
        result["baseline"] = baseline(fit_part, held, offenders)
        log(f"baseline: {json.dumps(result['baseline'])}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
