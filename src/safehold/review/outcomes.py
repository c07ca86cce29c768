"""Labelled outcomes of classifier hits and the precision they give, per classifier, label and threshold.

When a reviewer's decision closes a case (a ``not_violating`` decision, a finding on a known match, or the second
reviewer's confirmation of a finding), every ``classifier`` signal on the case gets one row in
``classifier_outcomes``, in the decision's transaction: the classifier, its version, the label it scored, the score,
the threshold in force at the time and the outcome the decision gives
(:data:`~safehold.cases.taxonomy.MATCH_OUTCOMES`: a finding of abuse makes each hit a true positive,
``not_violating`` a false positive). A case closed again later rewrites its rows (one row per signal, the latest
decision). The verdict is on the case: a hit on a case closed as abuse for other evidence counts as a true
positive, the same approximation bank-entry statistics make (docs/classifiers.md).

Precision at a threshold ``t`` is counted among the reviewed hits with score ≥ ``t``. Scores below the threshold
that was in force were never hits, so never reviewed: below it precision is unknown, and is reported as such.
"""

from __future__ import annotations

from sqlalchemy import case as when
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from safehold.cases.taxonomy import MATCH_OUTCOMES
from safehold.store.db import Database
from safehold.store.models import Case, CaseSignal, ClassifierOutcome

#: The thresholds precision is counted at (plus the threshold in force).
GRID = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.97, 0.99)


def record(s: Session, case: Case, actor: str) -> int:
    """Keep the outcome of every classifier signal of ``case``, just closed by a decision in ``MATCH_OUTCOMES``
    (nothing otherwise); returns how many rows were written."""
    outcome = MATCH_OUTCOMES.get(case.decision or "")
    if case.status != "closed" or outcome is None:
        return 0
    signals = s.scalars(select(CaseSignal).where(CaseSignal.case_id == case.id, CaseSignal.source == "classifier"))
    # Safehold's own classifiers' hits name their classifier and threshold; a platform's classifier score sent
    # with an event names neither, and has no threshold here to tune.
    rows = [_row(sig, case, outcome, actor) for sig in signals if sig.signal_type and "threshold" in (sig.detail or {})]
    if rows:
        s.execute(delete(ClassifierOutcome).where(ClassifierOutcome.signal_id.in_([r.signal_id for r in rows])))
        s.add_all(rows)
        s.flush()
    return len(rows)


def _row(sig: CaseSignal, case: Case, outcome: str, actor: str) -> ClassifierOutcome:
    detail = sig.detail or {}
    return ClassifierOutcome(
        signal_id=sig.id,
        case_id=case.id,
        classifier=str(detail.get("classifier") or sig.signal_type)[:64],
        version=str(detail.get("version") or "")[:32],
        label=str(detail.get("label") or sig.category or "")[:64],
        score=float(sig.confidence),
        threshold=float(detail["threshold"]),
        outcome=outcome,
        decision=case.decision,
        decided_by=actor,
        decided_at=case.closed_at or case.updated_at,
    )


def precision(db: Database, classifier: str, current: float | None, grid: tuple[float, ...] = GRID) -> dict:
    """Reviewed hits and precision per label and threshold for ``classifier``: for each threshold of ``grid`` and
    the ``current`` one (the policy's), the reviewed count, true and false positives and precision among hits with
    score ≥ it. At a threshold below the lowest threshold ever in force (``known`` false) precision is ``None``:
    scores under that one were never hits, so never reviewed, and the counts shown are those of the higher ones."""
    thresholds = sorted({*grid, *([current] if current is not None else [])})
    tp = ClassifierOutcome.outcome == "true_positive"
    columns = [ClassifierOutcome.label, func.min(ClassifierOutcome.threshold), func.count()]
    for t in thresholds:
        at = ClassifierOutcome.score >= t
        columns.append(func.sum(when((at & tp, 1), else_=0)))
        columns.append(func.sum(when((at & ~tp, 1), else_=0)))
    with db.session() as s:
        rows = s.execute(
            select(*columns).where(ClassifierOutcome.classifier == classifier).group_by(ClassifierOutcome.label)
        ).all()
    labels = []
    for label, lowest, reviewed, *counts in sorted(rows, key=lambda r: r[0]):
        table = []
        for i, t in enumerate(thresholds):
            true_pos, false_pos = int(counts[2 * i] or 0), int(counts[2 * i + 1] or 0)
            n = true_pos + false_pos
            table.append(
                {
                    "threshold": t,
                    "current": t == current,
                    "reviewed": n,
                    "true_positives": true_pos,
                    "false_positives": false_pos,
                    "precision": round(true_pos / n, 4) if n and t >= lowest else None,
                    "known": t >= lowest,
                }
            )
        labels.append({"label": label, "reviewed": reviewed, "lowest_threshold_reviewed": lowest, "thresholds": table})
    return {
        "classifier": classifier,
        "current_threshold": current,
        "labels": labels,
        "note": "Precision at a threshold counts reviewed hits with a score at or above it. Scores below the "
        "threshold in force at the time were never hits and never reviewed, so precision below it is unknown.",
    }
