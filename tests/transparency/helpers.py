"""A small world of cases for the transparency tests, made through the real services (detections recorded,
decided, confirmed, overturned, actions fired by policies and by hand), then moved to chosen days: the services
stamp records with the current time, and the figures are about days."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update

from safehold.cases.service import Detection, DetectionSignal
from safehold.store.models import Case, CaseAction, CaseDecision, TransparencyFact
from tests.review.helpers import ALICE, BOB, SENIOR, media_case

PLATFORM = "apikey:platform"


def noon(days_ago: int) -> dt.datetime:
    today = dt.datetime.now(dt.UTC).date()
    return dt.datetime.combine(today - dt.timedelta(days=days_ago), dt.time(12), tzinfo=dt.UTC)


def policies(svc) -> None:
    """Known policies only: a block on every hash match (automatic) and a removal on a confirmed finding."""
    for p in svc.actions.list_policies():
        svc.actions.delete_policy(p["name"])
    svc.actions.create_policy("auto-block", "auto", {"source": "hash_match"}, ["block_content"])
    svc.actions.create_policy("remove-csam", "decision", {"decision": "csam"}, ["remove_content"])


def decide(svc, case_id: int, decision: str, classification: str | None = None, who=ALICE) -> None:
    svc.cases.claim(case_id, who.label)
    svc.review.decide(case_id, who, decision, classification)


def hash_case(svc, seed: int) -> int:
    """A known match (closes on the first decision), with the automatic policy fired as the pipeline does."""
    case_id, _ = media_case(svc, seed, known=True)
    with svc.db.session() as s:
        signal = {"source": "hash_match", "category": "A1", "confidence": 1.0}
        svc.actions.for_detection(s, s.get(Case, case_id), [signal], PLATFORM)
    return case_id


def report_case(svc, seed: int) -> int:
    """A user report about an account: the ``report`` queue."""
    d = Detection(source="user_report", account_id=f"account-r{seed}",
                  signals=[DetectionSignal(source="user_report", category="grooming", confidence=0.5)])  # fmt: skip
    return svc.cases.record(d, actor=PLATFORM).id


def move(svc, case_id: int, to: dt.datetime, *, aged: float = 0.0) -> None:
    """Move every timestamp of the case by the same amount so that it opened at ``to``; ``aged`` seconds more are
    taken off its opening and due time only (it waited that long for its decisions)."""
    with svc.db.session() as s:
        case = s.get(Case, case_id)
        delta = to - case.opened_at

        def m(at):
            return None if at is None else at + delta

        age = dt.timedelta(seconds=aged)
        s.execute(
            update(Case)
            .where(Case.id == case_id)
            .values(opened_at=m(case.opened_at) - age, due_at=None if case.due_at is None else m(case.due_at) - age,
                    decided_at=m(case.decided_at), confirmed_at=m(case.confirmed_at), closed_at=m(case.closed_at))
        )  # fmt: skip
        for table, col in ((CaseDecision, CaseDecision.at), (CaseAction, CaseAction.created_at)):
            for rid, at in s.execute(select(table.id, col).where(table.case_id == case_id)).all():
                s.execute(update(table).where(table.id == rid).values({col.key: at + delta}))


def world(svc) -> dict[str, int]:
    """Five cases ten days ago (``past``), two today. Ten days ago:

    - ``known``: a hash match (automatic block), decided csam A1 after 100 s, closed (policy: remove);
    - ``confirmed``: a classifier hit decided csam A2 after 1000 s, confirmed by a second reviewer, closed (remove);
    - ``late``: decided not violating after 10000 s, closed, an hour after it was due;
    - ``waiting``: a classifier hit never decided (a senior reviewer suspends the account by hand);
    - ``overturned``: decided cse/grooming, overturned by the second reviewer: escalated, open.

    Today: ``fresh`` (classifier, open) and ``report`` (user report, open).
    """
    policies(svc)
    ids = {"known": hash_case(svc, 1)}
    for name, seed in (("confirmed", 2), ("late", 3), ("waiting", 4), ("overturned", 5)):
        ids[name] = media_case(svc, seed)[0]
    decide(svc, ids["known"], "csam", "A1")
    decide(svc, ids["confirmed"], "csam", "A2")
    svc.review.confirm(ids["confirmed"], BOB, agree=True)
    decide(svc, ids["late"], "not_violating")
    decide(svc, ids["overturned"], "cse", "grooming")
    svc.review.confirm(ids["overturned"], BOB, agree=False)
    svc.actions.take(ids["waiting"], "suspend_account", SENIOR.label)
    past = noon(10)
    for name, aged in (("known", 100), ("confirmed", 1000), ("late", 10000), ("waiting", 0), ("overturned", 0)):
        move(svc, ids[name], past, aged=aged)
    with svc.db.session() as s:  # the late one was due an hour before its decision
        late = s.get(Case, ids["late"])
        late.due_at = late.decided_at - dt.timedelta(hours=1)
    ids["fresh"] = media_case(svc, 6)[0]
    ids["report"] = report_case(svc, 7)
    return ids


def facts_table(svc) -> list[tuple]:
    """Every stored fact, sorted: two roll-ups of the same records must give the same table."""
    with svc.db.session() as s:
        q = select(TransparencyFact.day, TransparencyFact.family, TransparencyFact.dims, TransparencyFact.value,
                   TransparencyFact.total)  # fmt: skip
        return sorted((str(r[0]), r[1], r[2], r[3], round(r[4], 3)) for r in s.execute(q))


def bands(svc, *case_ids: int) -> list[str]:
    with svc.db.session() as s:
        return [s.get(Case, i).band for i in case_ids]
