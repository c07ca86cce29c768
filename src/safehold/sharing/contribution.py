"""Contribution: a confirmed case's hashes, sent to a peer exchange or written in NCMEC's XML — never its media.

A case is *confirmed* when it is closed with the decision ``csam``: new material only closes on a second reviewer's
agreement (:mod:`safehold.review.service`), a known match on the first decision. Its hashes are those computed when
its content was scanned and kept on the case: each item's MD5 and SHA-256, the hashes its hash-match signals carry,
and, while the item's media is still in the vault, every hash the signal registry computes from it (PDQ, vPDQ, …,
as for a bank entry), perceptual hashes too featureless to match safely left out. Records carry the case's
classification as category and ``case:<id>:item:<id>`` as their id; no filename, text or metadata of the case goes
with them.

A contribution is recorded once per (case, exchange): a repeated request sends nothing again; a failed one may be
sent again. The exchange is called while a ``sending`` row holds the claim, so two requests at once send once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import IO

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from safehold.audit import AuditService
from safehold.banks import formats
from safehold.banks.formats import EntryRecord
from safehold.banks.service import BANK_PDQ_MODE
from safehold.errors import Conflict, NotFound, SafeholdError
from safehold.sharing import registry
from safehold.sharing.base import Exchange, ExchangeError
from safehold.signals import registry as signals
from safehold.store.db import Database
from safehold.store.models import Case, CaseItem, CaseSignal, ExchangeContribution, ExchangeRow, iso, utcnow
from safehold.store.vault import MediaVault

#: The decision a case must be closed with for its hashes to leave the instance.
CONTRIBUTED_DECISION = "csam"
#: A ``sending`` claim older than this is taken to be from a process that died mid-request.
STALE_CLAIM = dt.timedelta(minutes=10)
#: Hashes one case may contribute (items × hash types; a case holds a few items).
MAX_HASHES = 1000
MAX_ERROR = 300


class ContributionService:
    def __init__(
        self,
        db: Database,
        audit: AuditService,
        vault: MediaVault,
        adapter_for: Callable[[str], Exchange],
        exchange_type: Callable[[str], type[Exchange]] = registry.get,
    ):
        self.db, self.audit, self.vault = db, audit, vault
        self.adapter_for, self.exchange_type = adapter_for, exchange_type

    def hashes(self, case_id: int) -> list[EntryRecord]:
        """The confirmed case's hashes as bank records (``contribution.not_confirmed`` otherwise)."""
        with self.db.session() as s:
            case = s.get(Case, case_id)
            if case is None:
                raise NotFound("case.not_found", f"No case with id {case_id}.")
            if case.status != "closed" or case.decision != CONTRIBUTED_DECISION:
                raise Conflict(
                    "contribution.not_confirmed",
                    f"Case {case_id} is not a confirmed CSAM finding: only a closed case decided "
                    f"{CONTRIBUTED_DECISION!r} (confirmed by a second reviewer when it was new material) is shared.",
                )
            category = case.classification
            items = list(s.scalars(select(CaseItem).where(CaseItem.case_id == case_id).order_by(CaseItem.id)))
            matched = s.execute(
                select(CaseSignal.item_id, CaseSignal.signal_type, CaseSignal.value)
                .where(CaseSignal.case_id == case_id, CaseSignal.source == "hash_match")
                .order_by(CaseSignal.id)
            ).all()
        found: dict[tuple[str, str], EntryRecord] = {}

        def add(item_id: int | None, signal_type: str | None, value: str | None) -> None:
            if not signal_type or not value or len(found) >= MAX_HASHES:
                return
            ext = f"case:{case_id}:item:{item_id}" if item_id is not None else f"case:{case_id}"
            found.setdefault((signal_type, value), EntryRecord(signal_type, value, external_id=ext, category=category))

        for item in items:
            for signal_type, value in self._item_hashes(item):
                add(item.id, signal_type, value)
        for item_id, signal_type, value in matched:
            add(item_id, signal_type, value)
        return sorted(found.values(), key=lambda r: (r.external_id or "", r.signal_type))

    def _item_hashes(self, item: CaseItem) -> list[tuple[str, str]]:
        out = [("md5", item.md5), ("sha256", item.sha256)]
        if item.media_key and self.vault.exists(item.media_key):
            hashed = signals.hash_content(self.vault.get(item.media_key), pdq_mode=BANK_PDQ_MODE)
            out += [(g.type, g.value) for g in hashed.signals if not signals.signal_type(g.type).unusable(g)]
        return [(t, v) for t, v in out if v]

    def export(self, case_id: int, fmt: str, stream: IO, actor: str) -> dict:
        """Write the confirmed case's hashes to ``stream`` in a bank format (``ncmec-xml`` for NCMEC); recorded."""
        result = formats.write(fmt, self.hashes(case_id), stream)
        detail = {"format": fmt, "hashes": result["records"]}
        self.audit.record(None, actor, "case.export_hashes", f"case:{case_id}", detail)
        return {"case_id": case_id, **result}

    def contribute(self, case_id: int, exchange: str, actor: str) -> dict:
        """Send the confirmed case's hashes to ``exchange`` (once per case and exchange)."""
        with self.db.session() as s:
            ex = s.scalar(select(ExchangeRow).where(ExchangeRow.name == exchange))
            if ex is None:
                raise NotFound("exchange.not_found", f"No exchange named {exchange!r}.")
            ex_id, ex_type = ex.id, ex.type
            sent = s.scalar(
                select(ExchangeContribution).where(
                    ExchangeContribution.case_id == case_id,
                    ExchangeContribution.exchange_id == ex_id,
                    ExchangeContribution.status == "sent",
                )
            )
            if sent is not None:  # answered before hashing anything again
                return {**to_dict(sent), "duplicate": True}
        if not self._takes_contributions(ex_type):
            raise Conflict(
                "contribution.not_supported", f"The exchange {exchange!r} ({ex_type}) takes no contributions."
            )
        records = self.hashes(case_id)
        if not records:
            raise Conflict("contribution.no_hashes", f"Case {case_id} has no hashes to contribute.")
        row = self._claim(case_id, ex_id, exchange, len(records), actor)
        if row["status"] == "sent":  # sent by a request that finished meanwhile
            return {**row, "exchange": exchange, "duplicate": True}
        try:
            accepted = self.adapter_for(exchange).contribute(records)
        except Exception as exc:  # recorded as failed (never left "sending"), then answered
            error = (
                exc
                if isinstance(exc, SafeholdError)
                else ExchangeError("exchange.unavailable", f"{type(exc).__name__}: {exc}", retryable=True)
            )
            self._finish(row["id"], exchange, case_id, actor, error=error)
            raise error from None
        return self._finish(row["id"], exchange, case_id, actor, accepted=accepted)

    def list(self, case_id: int) -> list[dict]:
        with self.db.session() as s:
            q = (
                select(ExchangeContribution)
                .where(ExchangeContribution.case_id == case_id)
                .order_by(ExchangeContribution.id)
            )
            return [to_dict(c) for c in s.scalars(q)]

    def _takes_contributions(self, type_name: str) -> bool:
        try:
            return self.exchange_type(type_name).accepts_contributions
        except SafeholdError:
            return False

    def _claim(self, case_id: int, exchange_id: int, exchange: str, n: int, actor: str) -> dict:
        """This request's ``sending`` row, or the existing row when it was sent (or is being sent) already."""
        now = utcnow()
        with self.db.session() as s:
            insert = pg_insert if s.bind.dialect.name == "postgresql" else sqlite_insert
            mine = s.execute(
                insert(ExchangeContribution)
                .values(
                    case_id=case_id,
                    exchange_id=exchange_id,
                    exchange_name=exchange,
                    status="sending",
                    hashes=n,
                    accepted=0,
                    actor=actor,
                    at=now,
                )  # fmt: skip
                .on_conflict_do_nothing(index_elements=["case_id", "exchange_id"])
                .returning(ExchangeContribution.id)
            ).scalar()
            row = s.scalar(
                select(ExchangeContribution)
                .where(ExchangeContribution.case_id == case_id, ExchangeContribution.exchange_id == exchange_id)
                .with_for_update()
            )
            if mine is None and row.status == "sending" and row.at > now - STALE_CLAIM:
                raise Conflict("contribution.in_progress", f"Case {case_id} is being contributed to this exchange.")
            if mine is None and row.status != "sent":  # failed, or a claim whose process died: taken over
                row.status, row.hashes, row.actor, row.at = "sending", n, actor, now
            return to_dict(row)

    def _finish(
        self,
        row_id: int,
        exchange: str,
        case_id: int,
        actor: str,
        *,
        accepted: int = 0,
        error: SafeholdError | None = None,
    ) -> dict:
        with self.db.session() as s:
            row = s.get(ExchangeContribution, row_id)
            row.at = utcnow()
            detail = {"exchange": exchange, "hashes": row.hashes}
            if error is None:
                row.status, row.accepted = "sent", int(accepted)
                row.last_error_code = row.last_error = None
                detail["accepted"] = row.accepted
                action = "case.contribute"
            else:
                row.status = "failed"
                row.last_error_code, row.last_error = error.code, error.message[:MAX_ERROR]
                detail.update(code=error.code, retryable=bool(getattr(error, "retryable", False)))
                action = "case.contribute_fail"
            self.audit.record(s, actor, action, f"case:{case_id}", detail)
            return to_dict(row)


def to_dict(c: ExchangeContribution) -> dict:
    """The contribution as listings show it; ``exchange`` is the name it had, ``exchange_deleted`` whether it is
    gone since."""
    return {
        "id": c.id,
        "case_id": c.case_id,
        "exchange": c.exchange_name,
        "exchange_deleted": c.exchange_id is None,
        "status": c.status,
        "hashes": c.hashes,
        "accepted": c.accepted,
        "last_error_code": c.last_error_code,
        "last_error": c.last_error,
        "actor": c.actor,
        "at": iso(c.at),
    }
