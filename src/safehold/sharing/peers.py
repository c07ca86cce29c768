"""The publishing side of the peer exchange: banks this instance shares with other Safehold instances.

A consortium of small platforms each runs Safehold; each operator chooses which of its banks (block banks of
confirmed hashes, allow banks too) each peer may read. A peer is another instance: it calls with an API key of
role ``peer`` (issued once by :meth:`PeerService.add_peer`) and reads, per shared bank, a feed of signed pages.
The subscribing side is :class:`safehold.sharing.exchanges.peer.PeerExchange`.

**Feed.** Per bank, a cursor walks two phases (see :mod:`safehold.sharing.peer_protocol`): first a copy of the
bank's enabled entries in id order, then the matching-index change log (``index_changes``, whose rows carry
their bank) after the log position where the copy began. The log is append-only and its writers commit in
sequence order, so nothing committed after the copy began is missed; an entry changed during the copy appears
again in the log. A log page reports each entry it touches once, as it is *now*: an addition if the entry is
enabled, else a withdrawal (of the source's entry id), so replaying a page in any order gives the same bank.
Every page is signed with the instance's Ed25519 key, derived from the instance key (stable, never stored).

**Feedback** is a peer's opinion on one of our entries (its latest per entry is kept), listed for the operator.

**Contributions** are confirmed hashes (never media) from a peer, signed with the peer's own key. They are a
stranger's hashes: refused unless the operator registered the peer's key and designated a bank for them, and
they land there *disabled* (they match nothing) until an operator reviews and enables them.
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from functools import cached_property

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from safehold.audit import AuditService
from safehold.auth.apikeys import ApiKeyService, Principal
from safehold.banks.formats import EntryRecord
from safehold.banks.service import BankService, fingerprint, validate_record
from safehold.errors import Conflict, NotFound, SafeholdError
from safehold.sharing import peer_protocol as proto
from safehold.signals import registry
from safehold.store.db import Database
from safehold.store.models import Bank, BankEntry, IndexChange, Peer, PeerFeedback, PeerShare, utcnow
from safehold.store.sealing import Sealer

#: The label the instance's peer signing key is derived under (changing it changes every peer's pinned key).
SIGNING_LABEL = b"safehold.peer.signing.v1"
#: The most feedback rows one listing returns.
MAX_FEEDBACK_PAGE = 500


@dataclass(frozen=True)
class NewPeer:
    name: str
    key_prefix: str
    token: str  # the peer's API key: shown once, never stored


def _peer_dict(p: Peer, contributions_bank: str | None) -> dict:
    return {
        "name": p.name,
        "key_prefix": p.key_prefix,
        "public_key": p.public_key,
        "contributions_bank": contributions_bank,
        "created_by": p.created_by,
        "created_at": p.created_at.isoformat(),
    }


class PeerService:
    def __init__(self, db: Database, audit: AuditService, sealer: Sealer, banks: BankService, apikeys: ApiKeyService):
        self.db = db
        self.audit = audit
        self.sealer = sealer
        self.banks = banks
        self.apikeys = apikeys

    # ------------------------------------------------------------- identity

    @cached_property
    def _key(self):
        return proto.signing_key(self.sealer.keys.derive(SIGNING_LABEL))

    def public_key(self) -> str:
        """This instance's peer key (``ed25519:…``): peers pin it; it signs feed pages and contributions."""
        return proto.public_key_text(self._key)

    def secret_seed(self) -> str:
        """The private seed of :meth:`public_key` (base64): the ``signing_key`` credential of this instance's own
        peer exchanges, so what it contributes is signed with the key its peers registered."""
        return base64.b64encode(self.sealer.keys.derive(SIGNING_LABEL)).decode()

    def sign(self, purpose: str, doc: dict) -> str:
        return proto.sign(self._key, purpose, doc)

    # ---------------------------------------------------------------- peers

    def add_peer(
        self,
        name: str,
        *,
        public_key: str | None = None,
        contributions_bank: str | None = None,
        actor: str | None = None,
    ) -> NewPeer:
        """Register a peer and issue its API key (role ``peer``), returned once."""
        _check_peer_name(name)
        if public_key is not None:
            proto.parse_public_key(public_key)
        with self.db.session() as s:
            if s.scalar(select(Peer.id).where(Peer.name == name)) is not None:
                raise Conflict("peer.exists", f"There is already a peer named {name!r}.")
            bank_id = self._bank(s, contributions_bank).id if contributions_bank else None
        key = self.apikeys.create(f"peer:{name}", "peer", created_by=actor)
        try:
            with self.db.session() as s:
                s.add(
                    Peer(
                        name=name,
                        key_prefix=key.prefix,
                        public_key=public_key,
                        contributions_bank_id=bank_id,
                        created_by=actor,
                    )
                )
                s.flush()
                detail = {"key_prefix": key.prefix, "contributions_bank": contributions_bank}
                self.audit.record(s, actor, "peer.add", f"peer:{name}", detail)
        except IntegrityError:
            self.apikeys.revoke(key.prefix, actor=actor)
            raise Conflict("peer.exists", f"There is already a peer named {name!r}.") from None
        return NewPeer(name, key.prefix, key.token)

    def update_peer(
        self,
        name: str,
        *,
        public_key: str | None = None,
        contributions_bank: str | None = None,
        no_contributions: bool = False,
        actor: str | None = None,
    ) -> dict:
        """Set a peer's contribution key or bank (``no_contributions``: refuse its contributions again)."""
        if public_key is not None:
            proto.parse_public_key(public_key)
        with self.db.session() as s:
            peer = self._peer(s, name)
            if public_key is not None:
                peer.public_key = public_key
            if no_contributions:
                peer.contributions_bank_id = None
            elif contributions_bank is not None:
                peer.contributions_bank_id = self._bank(s, contributions_bank).id
            s.flush()
            detail = {"public_key": peer.public_key, "contributions_bank": self._bank_name(s, peer)}
            self.audit.record(s, actor, "peer.update", f"peer:{name}", detail)
            return _peer_dict(peer, detail["contributions_bank"])

    def peers(self) -> list[dict]:
        with self.db.session() as s:
            return [_peer_dict(p, self._bank_name(s, p)) for p in s.scalars(select(Peer).order_by(Peer.name))]

    def remove_peer(self, name: str, actor: str | None = None) -> None:
        """Forget a peer: its key is revoked, its shares and feedback go with it."""
        with self.db.session() as s:
            peer = self._peer(s, name)
            prefix = peer.key_prefix
            s.delete(peer)
            s.flush()
            self.audit.record(s, actor, "peer.remove", f"peer:{name}", {"key_prefix": prefix})
        self.apikeys.revoke(prefix, actor=actor)

    def caller(self, who: Principal) -> Peer:
        """The peer an API key belongs to (``peer.unknown`` for a ``peer`` key no peer uses)."""
        with self.db.session() as s:
            peer = s.scalars(select(Peer).where(Peer.key_prefix == who.key_prefix)).first() if who.key_prefix else None
            if peer is None:
                raise NotFound(
                    "peer.unknown", "This API key belongs to no peer: issue one with `safehold peer add-peer`."
                )
            s.expunge(peer)
            return peer

    # --------------------------------------------------------------- shares

    def share(self, bank: str, peer: str | None = None, actor: str | None = None) -> bool:
        """Share ``bank`` with ``peer`` (``None``: every peer, now and later). False if it already was."""
        with self.db.session() as s:
            bank_id = self._bank(s, bank).id
            peer_id = self._peer(s, peer).id if peer else None
            if s.scalar(select(PeerShare.id).where(PeerShare.bank_id == bank_id, _same_peer(peer_id))) is not None:
                return False
            s.add(PeerShare(bank_id=bank_id, peer_id=peer_id, created_by=actor))
            s.flush()
            self.audit.record(s, actor, "peer.share", f"bank:{bank}", {"peer": peer or "*"})
        return True

    def unshare(self, bank: str, peer: str | None = None, actor: str | None = None) -> bool:
        """Stop sharing ``bank`` with ``peer`` (``None``: the every-peer share). False if it was not shared so."""
        with self.db.session() as s:
            bank_id = self._bank(s, bank).id
            peer_id = self._peer(s, peer).id if peer else None
            row = s.scalars(select(PeerShare).where(PeerShare.bank_id == bank_id, _same_peer(peer_id))).first()
            if row is None:
                return False
            s.delete(row)
            self.audit.record(s, actor, "peer.unshare", f"bank:{bank}", {"peer": peer or "*"})
        return True

    def shares(self) -> list[dict]:
        with self.db.session() as s:
            rows = s.execute(
                select(Bank.name, Bank.kind, Peer.name)
                .select_from(PeerShare)
                .join(Bank, Bank.id == PeerShare.bank_id)
                .outerjoin(Peer, Peer.id == PeerShare.peer_id)
                .order_by(Bank.name, Peer.name)
            ).all()
            return [{"bank": b, "kind": k, "peer": p or "*"} for b, k, p in rows]

    def shared_banks(self, peer: Peer) -> list[dict]:
        """The banks ``peer`` may read, with their kind and how many enabled entries each holds."""
        with self.db.session() as s:
            banks = s.scalars(select(Bank).where(Bank.id.in_(self._shared_ids(peer))).order_by(Bank.name)).all()
            counts = dict(
                s.execute(
                    select(BankEntry.bank_id, func.count())
                    .where(BankEntry.bank_id.in_([b.id for b in banks]), BankEntry.enabled.is_(True))
                    .group_by(BankEntry.bank_id)
                ).all()
            )
            return [
                {"name": b.name, "kind": b.kind, "description": b.description, "entries": counts.get(b.id, 0)}
                for b in banks
            ]

    # ----------------------------------------------------------------- feed

    def feed(self, peer: Peer, bank: str, after: str | None, limit: int) -> dict:
        """One signed page of ``bank``'s feed for ``peer`` after cursor ``after`` (``None``: from the start)."""
        if not 1 <= limit <= proto.MAX_PAGE:
            raise SafeholdError("request.invalid_limit", f"limit must be between 1 and {proto.MAX_PAGE}.")
        with self.db.session() as s:
            b = self._shared_bank(s, peer, bank)
            if after is None:
                phase, seq, after_id = "fill", s.scalar(select(func.coalesce(func.max(IndexChange.seq), 0))), 0
            else:
                phase, seq, after_id = proto.parse_cursor(after)
            if phase == "fill":
                entries, next_cursor, more = self._copy(s, b, seq, after_id, limit)
            else:
                entries, next_cursor, more = self._changes(s, b, seq, limit)
        page = {
            "v": 1,
            "peer": peer.name,
            "bank": b.name,
            "kind": b.kind,
            "after": after,
            "next": next_cursor,
            "more": more,
            "entries": entries,
            "at": utcnow().isoformat(),
        }
        return {"page": page, "signature": self.sign("feed", page)}

    @staticmethod
    def _copy(s: Session, bank: Bank, seq: int, after_id: int, limit: int) -> tuple[list[dict], str, bool]:
        rows = s.scalars(
            select(BankEntry)
            .where(BankEntry.bank_id == bank.id, BankEntry.id > after_id, BankEntry.enabled.is_(True))
            .order_by(BankEntry.id)
            .limit(limit)
        ).all()
        if len(rows) == limit:
            return [_addition(e) for e in rows], proto.fill_cursor(seq, rows[-1].id), True
        # The copy is done: the change log after ``seq`` comes next (``more``: the peer asks once more).
        return [_addition(e) for e in rows], proto.log_cursor(seq), True

    @staticmethod
    def _changes(s: Session, bank: Bank, seq: int, limit: int) -> tuple[list[dict], str, bool]:
        changes = s.execute(
            select(IndexChange.seq, IndexChange.entry_id)
            .where(IndexChange.bank_id == bank.id, IndexChange.seq > seq, IndexChange.op.in_(("add", "remove")))
            .order_by(IndexChange.seq)
            .limit(limit)
        ).all()
        touched = list(dict.fromkeys(entry_id for _, entry_id in changes))
        now = {e.id: e for e in s.scalars(select(BankEntry).where(BankEntry.id.in_(touched)))}
        entries = [
            _addition(now[i]) if i in now and now[i].enabled and now[i].bank_id == bank.id else _withdrawal(i)
            for i in touched
        ]
        last = changes[-1].seq if changes else seq
        return entries, proto.log_cursor(last), len(changes) == limit

    # ------------------------------------------------------------- feedback

    def record_feedback(
        self,
        peer: Peer,
        *,
        entry_id: int | None,
        signal_type: str | None,
        value: str | None,
        verdict: str,
        reason: str | None = None,
        category: str | None = None,
    ) -> dict:
        """Store ``peer``'s opinion on one entry of a bank shared with it (by our id, or by its hash)."""
        with self.db.session() as s:
            entry = self._feedback_entry(s, peer, entry_id, signal_type, value)
            row = s.scalars(
                select(PeerFeedback).where(PeerFeedback.peer_id == peer.id, PeerFeedback.entry_id == entry.id)
            ).first()
            if row is None:
                row = PeerFeedback(peer_id=peer.id, entry_id=entry.id)
                s.add(row)
            row.verdict, row.reason, row.category, row.at = verdict, reason, category, utcnow()
            s.flush()
            detail = {"verdict": verdict, "reason": reason, "signal_type": entry.signal_type}
            self.audit.record(s, f"peer:{peer.name}", "peer.feedback", f"entry:{entry.id}", detail)
            return _feedback_dict(row, peer.name, entry)

    def _feedback_entry(
        self, s: Session, peer: Peer, entry_id: int | None, signal_type: str | None, value: str | None
    ) -> BankEntry:
        shared = self._shared_ids(peer)
        query = select(BankEntry).where(BankEntry.bank_id.in_(shared))
        if entry_id is not None:
            query = query.where(BankEntry.id == entry_id)
        elif signal_type and value:
            value = registry.normalize(signal_type, value)
            query = query.where(BankEntry.signal_type == signal_type, BankEntry.fingerprint == fingerprint(value))
        else:
            raise SafeholdError("peer.invalid_feedback", "Feedback names an entry: its id, or its type and value.")
        entry = s.scalars(query.order_by(BankEntry.id)).first()
        if entry is None:
            raise NotFound("entry.not_found", "No entry of a bank shared with you is that one.")
        return entry

    def feedback(self, *, entry_id: int | None = None, after_id: int = 0, limit: int = 100) -> list[dict]:
        """Peers' feedback on our entries, oldest first (keyset: pass the last ``id`` as ``after_id``)."""
        if not 1 <= limit <= MAX_FEEDBACK_PAGE:
            raise SafeholdError("request.invalid_limit", f"limit must be between 1 and {MAX_FEEDBACK_PAGE}.")
        with self.db.session() as s:
            query = (
                select(PeerFeedback, Peer.name, BankEntry)
                .join(Peer, Peer.id == PeerFeedback.peer_id)
                .join(BankEntry, BankEntry.id == PeerFeedback.entry_id)
                .where(PeerFeedback.id > after_id)
            )
            if entry_id is not None:
                query = query.where(PeerFeedback.entry_id == entry_id)
            rows = s.execute(query.order_by(PeerFeedback.id).limit(limit)).all()
            return [_feedback_dict(f, name, e) for f, name, e in rows]

    # -------------------------------------------------------- contributions

    def contribute(self, peer: Peer, contribution: dict, signature: str) -> dict:
        """Take a peer's signed contribution of hashes into its designated bank, disabled until reviewed."""
        if peer.contributions_bank_id is None or not peer.public_key:
            raise Conflict(
                "peer.contributions_disabled",
                "This instance takes no contributions from you (its operator designated no bank or key for them).",
            )
        if not proto.verify(proto.parse_public_key(peer.public_key), "contribution", contribution, signature):
            raise SafeholdError("peer.bad_signature", "The contribution's signature is not your registered key's.")
        if contribution.get("peer") != peer.name:
            raise SafeholdError("peer.bad_signature", f"The contribution is signed for {contribution.get('peer')!r}.")
        records = [
            validate_record(
                EntryRecord(
                    signal_type=item["signal_type"],
                    value=item["value"],
                    source=f"peer:{peer.name}",
                    external_id=item.get("id"),
                    category=item.get("category"),
                    note=f"contributed by peer {peer.name}: review, then enable",
                    enabled=False,
                )
            )
            for item in contribution["entries"]
        ]
        with self.db.session() as s:
            bank = s.get(Bank, peer.contributions_bank_id).name
        report = self.banks.add_records(
            bank, records, added_by=f"peer:{peer.name}", audit_action="peer.contribution", audit_detail={}
        )
        return {"bank": bank, "accepted": report.added, "duplicates": report.duplicates}

    # -------------------------------------------------------------- helpers

    @staticmethod
    def _shared_ids(peer: Peer):
        """A subquery: the ids of the banks shared with ``peer`` (by name, or with every peer)."""
        return select(PeerShare.bank_id).where(or_(PeerShare.peer_id == peer.id, PeerShare.peer_id.is_(None)))

    def _shared_bank(self, s: Session, peer: Peer, name: str) -> Bank:
        bank = s.scalars(select(Bank).where(Bank.name == name, Bank.id.in_(self._shared_ids(peer)))).first()
        if bank is None:  # the same answer for a bank that exists but is not shared: its name stays private
            raise NotFound("peer.bank_not_shared", f"No bank named {name!r} is shared with you.")
        return bank

    @staticmethod
    def _peer(s: Session, name: str) -> Peer:
        peer = s.scalars(select(Peer).where(Peer.name == name)).first()
        if peer is None:
            raise NotFound("peer.not_found", f"No peer named {name!r}.")
        return peer

    @staticmethod
    def _bank(s: Session, name: str) -> Bank:
        bank = s.scalars(select(Bank).where(Bank.name == name)).first()
        if bank is None:
            raise NotFound("bank.not_found", f"No bank named {name!r}.")
        return bank

    @staticmethod
    def _bank_name(s: Session, peer: Peer) -> str | None:
        return s.scalar(select(Bank.name).where(Bank.id == peer.contributions_bank_id))


def _same_peer(peer_id: int | None):
    return PeerShare.peer_id.is_(None) if peer_id is None else PeerShare.peer_id == peer_id


def _addition(e: BankEntry) -> dict:
    """What a peer learns of an entry: its hash, its category and our id (never its note, source or metadata)."""
    return {"op": "add", "id": str(e.id), "signal_type": e.signal_type, "value": e.value, "category": e.category}


def _withdrawal(entry_id: int) -> dict:
    return {"op": "remove", "id": str(entry_id)}


def _feedback_dict(f: PeerFeedback, peer: str, e: BankEntry) -> dict:
    return {
        "id": f.id,
        "peer": peer,
        "entry_id": e.id,
        "bank": e.bank.name,
        "signal_type": e.signal_type,
        "value": e.value,
        "verdict": f.verdict,
        "reason": f.reason,
        "category": f.category,
        "at": f.at.isoformat() if isinstance(f.at, dt.datetime) else None,
    }


def _check_peer_name(name: str) -> None:
    if not name or len(name) > 64 or not all(c.isalnum() or c in "-_." for c in name):
        raise SafeholdError("peer.invalid_name", "A peer's name is 1 to 64 letters, digits, '-', '_' or '.'.")
