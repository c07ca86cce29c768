#!/usr/bin/env python3
"""Train the grooming model that ships in the package (``src/safehold/text/grooming/default_model.json``).

Reproducible from public repositories at pinned commits (``grooming_data.SOURCES``: repository, commit, licence and
style of each); the data is read at training time and never committed. Put a clone (or a fetched snapshot) of each
repository under one directory and pass it as ``--sources``; each is found as ``DIR/owner+name/repo``,
``DIR/owner+name``, ``DIR/name`` or ``DIR/owner/name``.

What it does, and why:

1. Reads every source; of the Perverted-Justice offenders only those ``pj_split.may_train_on`` allows (the rest
   are reserved for independent evaluation). Sources licensed for research only (``grooming_data.EVALUATION_ONLY``:
   the NPS chat rooms) are left out of training and calibration.
2. Splits by offender (and by negative conversation / log) into train 60 % / validation 20 % / test 20 %
   (``grooming_data.part``). The test part is not read here: ``bench/grooming.py`` measures the shipped model on it.
3. Fits logistic regression on the train part for each regularisation strength in ``--c`` and keeps the one with
   the best F0.5 on validation (at its own best threshold).
4. Calibrates: the validation threshold with the best F0.5 becomes risk 0.7, the configured default alert
   threshold (``GroomingModel.calibrated``), so an installation with default settings alerts where validation
   says it should.
5. Writes the model JSON with the sources, split, counts and validation figures in its ``meta``.

Usage: ``.venv/bin/python scripts/train_grooming_model.py --sources DIR [--out PATH] [--c 0.3 1 3]``
(scikit-learn: ``pip install -e '.[train]'``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import grooming_data as data  # noqa: E402

from safehold.text.grooming.evaluate import best_threshold, score, trace  # noqa: E402
from safehold.text.grooming.features import CHARS  # noqa: E402
from safehold.text.grooming.model import DEFAULT_ALERT_THRESHOLD, DEFAULT_BUCKETS, SHIPPED, fit, samples  # noqa: E402
from safehold.text.grooming.scorer import GroomingScorer  # noqa: E402

OUT = REPO / "src" / "safehold" / "text" / "grooming" / SHIPPED


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sources", type=Path, default=REPO / "var" / "grooming-sources")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--c", type=float, nargs="+", default=[0.3, 1.0, 3.0])
    p.add_argument("--buckets", type=int, default=DEFAULT_BUCKETS)
    p.add_argument("--chars", type=int, default=CHARS, help="character n-gram size inside words (0: none)")
    args = p.parse_args()

    conversations, offenders = data.load(args.sources)
    usable = [c for c in conversations if c.source not in data.EVALUATION_ONLY]
    parts = {name: [c for c in usable if data.part(c.id) == name] for name in ("train", "validation")}
    log(f"{len(conversations)} conversations, {len(offenders)} train-allowed offenders")

    named, text, labels = samples(parts["train"], offenders, buckets=args.buckets, chars=args.chars)
    log(f"{len(labels)} samples ({sum(labels)} offender snapshots), {text.nnz} text entries")

    best = None
    for c in args.c:
        model = fit(named, text, labels, c=c, chars=args.chars)
        t = trace(GroomingScorer(model=model), parts["validation"])
        threshold = best_threshold(t, offenders)
        figures = score(t, offenders, threshold)
        log(
            f"C={c}: validation F0.5 {figures['f0_5']} at {threshold:.4f} "
            f"(P {figures['precision']}, R {figures['recall']})"
        )
        if best is None or figures["f0_5"] > best[2]["f0_5"]:
            best = (model, threshold, figures)
    model, threshold, figures = best

    shipped = model.calibrated(threshold, DEFAULT_ALERT_THRESHOLD)
    shipped.meta.update(
        {
            "trained": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"),
            "script": "scripts/train_grooming_model.py",
            "sources": [asdict(s) for s in data.SOURCES],
            "split": "grooming_data.part: by offender / conversation, train 60 %, validation 20 %, test 20 %",
            "train": _counts(parts["train"], offenders),
            "validation": {k: figures[k] for k in ("precision", "recall", "f0_5", "median_alert_position")},
        }
    )
    shipped.save(args.out)
    log(f"wrote {args.out} (C={shipped.meta['c']}, validation threshold {threshold:.4f} -> {DEFAULT_ALERT_THRESHOLD})")


def _counts(conversations, offenders) -> dict:
    out: dict[str, dict] = {}
    for c in conversations:
        row = out.setdefault(c.source, {"conversations": 0, "messages": 0, "offenders": 0})
        row["conversations"] += 1
        row["messages"] += len(c.messages)
        row["offenders"] += len({m.author for m in c.messages} & offenders)
    return out


if __name__ == "__main__":
    main()
