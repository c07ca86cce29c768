"""Migration 0009 starts the feedback cursor at the audit log's head: decisions taken before sharing was installed
send nothing; those taken after do. Both backends."""

from __future__ import annotations

from alembic import command
from sqlalchemy import func, select

from safehold.sharing.feedback import CURSOR_KEY
from safehold.store import migrate
from safehold.store.models import AppSetting, AuditRecord, ExchangeRow
from tests.sharing.test_feedback import decide, exchanges, matched_case  # noqa: F401


def _downgrade(db, revision: str) -> None:
    cfg = migrate.alembic_config(db.url)
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def test_decisions_before_the_upgrade_send_nothing(svc, exchanges):  # noqa: F811
    decide(svc, matched_case(svc, seed=1, content="before"), "not_violating")
    _downgrade(svc.db, "0008")  # as if that decision was taken before sharing was installed
    migrate.upgrade(svc.db)
    with svc.db.session() as s:
        assert s.get(AppSetting, CURSOR_KEY).value["seq"] == s.scalar(select(func.max(AuditRecord.seq)))
        bank_id = svc.banks.get("peer-list").id
        s.add(ExchangeRow(name="peer", type="fakefb", bank_id=bank_id, settings={}))  # configured again
    assert svc.feedback.run_once() == 0 and exchanges["peer"].opinions == []
    decide(svc, matched_case(svc, seed=1, content="after"), "not_violating")
    assert svc.feedback.run_once() == 2 and len(exchanges["peer"].opinions) == 2
