"""Stored conversations scored as their messages arrive (Principle 3); alerts open cases in the text queue.

The platform streams a conversation's messages (one at a time or up to ``MAX_MESSAGES`` per request). Each is
scored by the grooming scorer in force (:meth:`safehold.rules.terms.TermLibrary.current`, so a term-list change
applies to the next message) and only the scorer's bounded state is stored — stage strengths, age signals and a
few evidence excerpts — plus the score, level, alert flag and the two participants it names. Never the transcript.

- **Idempotent.** A message id is the retry key: an id already scored for the conversation is counted as a
  duplicate and not scored again (``conversation_messages`` keeps ids only).
- **Nothing lost under concurrency.** The conversation row is created if missing (``INSERT … ON CONFLICT DO
  NOTHING``) and then locked (``SELECT … FOR UPDATE`` on PostgreSQL, the writer lock on SQLite), so two requests
  for one conversation are scored one after the other. The message ids, the new state and score, the case and
  its audit record commit in one transaction.
- **Alerts become cases.** When the score reaches ``settings.grooming_alert_threshold`` the pipeline opens a case
  (:meth:`safehold.pipeline.service.Pipeline.record`, in the same transaction; source
  ``grooming``, queue ``text``, subject ``content:conversation:<id>``). An alert that names a participant under
  18 (:func:`minor_at_risk`) is a P0 case with the shortest SLA (docs/cases.md, "Priority and SLA"). The case is
  sent new evidence — a signal with the explanation and the stages' evidence — only when the risk rose by ``RISE``
  since the score it last carried (``case_score``) or the risk author showed a stage not seen before; that keeps a
  busy conversation from adding a signal per message. Once its case is closed, the next alert that brings such
  new evidence opens a new case.
- **Disclosures.** A message in which its author says, in the first person, that they are being asked for images,
  threatened with their images or abused (the term lists' ``victim`` phrases, :mod:`safehold.text.support`, the
  same ones that give a search the ``support`` answer) is a disclosure. It raises the conversation's risk to at
  least the alert threshold and its level to high, with an explanation line naming the message and phrase; the
  alert's signal carries ``disclosure`` (author, message, phrases, age if known); when the discloser is under 18
  (stated in the chat or given by the platform) it is also ``minor_disclosure``, which the ``minor_disclosure``
  urgency rule makes a P0 case. An adult's or unknown-age disclosure opens a case at its score's band: "my
  grandma keeps asking me for pictures" must not jump the queue. The last ``MAX_DISCLOSURES`` are kept next to
  the scorer's state (phrases from the list and ids only, never the message), so a later batch still carries
  them. The grooming scorer itself is unchanged: a disclosure is the victim's voice, not a stage of the risk
  author's behaviour.
- **Ages.** An age a participant states in the chat ("i'm 13", the grooming scorer's age signals,
  :mod:`safehold.text.grooming.ages`) becomes a ``chat`` age signal of that participant's account, and an age the
  platform gives in ``participants`` a ``platform`` one (:mod:`safehold.safety.ages`), in the same transaction as
  the messages — only when it differs from that account's latest signal of the same source, so a chatty account is
  one signal per change, not one per message.
- **Retention.** A conversation without an open case is forgotten ``settings.conversation_idle_days`` after its
  last message (:meth:`ConversationService.prune`, from the upkeep loop).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator
from sqlalchemy import Text, bindparam, cast, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from safehold.audit import AuditService
from safehold.cases.detection import CaseRef, Detection, DetectionSignal
from safehold.cases.service import lock_writes
from safehold.config import Settings
from safehold.errors import Conflict, NotFound, SafeholdError, validated
from safehold.pipeline.service import Pipeline, Submission
from safehold.rules.states import StateCache
from safehold.rules.terms import TermLibrary
from safehold.safety.ages import CHAT_CONFIDENCE, PARTICIPANT_CONFIDENCE, AgeBook
from safehold.store import jsoncodec
from safehold.store.db import Database
from safehold.store.groupcommit import Batched, GroupCommit, Work
from safehold.store.models import Case, Conversation, ConversationMessage, as_utc, iso, utcnow
from safehold.text.grooming.scorer import ADULT_AGE, MAX_AUTHORS, Assessment, ConversationState, Message, Profile
from safehold.text.normalize import MAX_TEXT
from safehold.text.support import victim_phrases

log = logging.getLogger(__name__)

MAX_ID = 128
MAX_MESSAGES = 100
MAX_LIMIT = 500
#: A case is sent the conversation's assessment again only when the risk rose at least this much (or a new stage).
RISE = 0.05
SEXTORTION_STAGES = frozenset(("sextortion_threat", "sextortion_payment"))
#: How many disclosures a conversation keeps (the most recent).
MAX_DISCLOSURES = 5
_DISCLOSURES = "disclosures"  # their key next to the scorer's state in ``conversations.state``
#: ``prune`` runs at most this often.
PRUNE_EVERY = dt.timedelta(hours=1)
_CONTENT_PREFIX = "conversation:"


# ------------------------------------------------------------------------------------------ schema


UtcDateTime = Annotated[dt.datetime, AfterValidator(as_utc)]
Author = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MessageIn(_Strict):
    id: str = Field(
        min_length=1,
        max_length=MAX_ID,
        description="The platform's message id: the retry key (printable ASCII).",
        json_schema_extra={"pattern": "^[ -~]*$"},  # what _printable_ascii checks, with its own message
    )
    author: Author = Field(description="The platform's id of the sender.")
    # The length is published but checked by parse(): a long text has its own code, conversation.text_too_long.
    text: str = Field(
        description=f"The message text (at most {MAX_TEXT:,} characters).", json_schema_extra={"maxLength": MAX_TEXT}
    )
    sent_at: UtcDateTime | None = None

    @field_validator("id")
    @classmethod
    def _printable_ascii(cls, value: str) -> str:
        if not (value.isascii() and value.isprintable()):
            raise ValueError(f"a message id is 1 to {MAX_ID} printable ASCII characters")
        return value


#: The fields of one message (a single message may be sent at the top level of a request with these).
MESSAGE_KEYS = tuple(MessageIn.model_fields)


class ParticipantIn(_Strict):
    age: int | None = Field(None, ge=0, le=130, description="The platform's declared or estimated age.")


Participants = Annotated[dict[Author, ParticipantIn], Field(max_length=MAX_AUTHORS)]


class MessagesIn(_Strict):
    messages: list[MessageIn] = Field(min_length=1, max_length=MAX_MESSAGES)
    participants: Participants = Field(default_factory=dict)


class OneMessageIn(MessageIn):
    """One message at the top level of a request (what :func:`parse` turns into a :class:`MessagesIn`)."""

    participants: Participants = Field(default_factory=dict)


def parse(body: object) -> MessagesIn:
    """The request body as :class:`MessagesIn`; a single message may be given at the top level."""
    if isinstance(body, dict) and "messages" not in body and any(k in body for k in MESSAGE_KEYS):
        body = {
            "messages": [{k: body[k] for k in MESSAGE_KEYS if k in body}],
            **{k: v for k, v in body.items() if k not in MESSAGE_KEYS},
        }
    parsed = validated(MessagesIn, body, "the messages")
    for i, m in enumerate(parsed.messages):
        if len(m.text) > MAX_TEXT:
            raise SafeholdError(
                "conversation.text_too_long",
                f"Message {m.id!r} has {len(m.text):,} characters; a message is at most {MAX_TEXT:,}.",
                status=422,
                detail={"index": i, "message_id": m.id, "length": len(m.text), "max": MAX_TEXT},
            )
    return parsed


def check_id(conversation_id: object) -> str:
    if not (
        isinstance(conversation_id, str)
        and 1 <= len(conversation_id) <= MAX_ID
        and conversation_id.isprintable()
        and conversation_id.strip()
    ):
        raise _invalid(
            "The conversation id is not valid.",
            [
                {
                    "loc": ["conversation_id"],
                    "msg": f"a conversation id is 1 to {MAX_ID} printable characters",
                    "type": "value_error",
                }
            ],
        )
    return conversation_id


def _invalid(message: str, errors: list) -> SafeholdError:
    return SafeholdError("request.invalid", message, status=422, detail={"errors": errors})


def content_id(conversation_id: str) -> str:
    """The case subject's content id: ``conversation:<id>`` (ids too long for the column are hashed)."""
    cid = _CONTENT_PREFIX + conversation_id
    if len(cid) > MAX_ID:
        cid = _CONTENT_PREFIX + "sha256:" + hashlib.sha256(conversation_id.encode()).hexdigest()
    return cid


def minor_at_risk(a: Assessment) -> dict | None:
    """The youngest participant under 18 other than the risk author (age stated in the conversation or given
    by the platform), or ``None``. Carried on the alert's signal, it is what the ``minor_at_risk`` urgency rule
    reads (:data:`safehold.cases.taxonomy.URGENCY_RULES`)."""
    minors = [
        (p["age"], name, p["age_source"])
        for name, p in a.participants.items()
        if name != a.risk_author and p.get("age") is not None and p["age"] < ADULT_AGE
    ]
    if not minors:
        return None
    age, name, source = min(minors)
    return {"participant": name, "age": age, "age_source": source}


def with_disclosures(a: Assessment, disclosures: list[dict], settings: Settings) -> Assessment:
    """The assessment with the conversation's disclosures taken in: risk at least the alert threshold, level
    high, alert on, and one explanation line per disclosure. Unchanged when there is none."""
    if not disclosures:
        return a
    lines = [
        f"{d['author']} said they are being threatened, asked for images or abused (message {d['message_id']}: "
        f"{', '.join(repr(p) for p in d['phrases'])}); they need help, see the support resources."
        for d in disclosures
    ]
    return dataclasses.replace(
        a,
        score=max(a.score, settings.grooming_alert_threshold),
        level="high",
        alert=True,
        explanation=[*lines, *a.explanation],
    )


def latest_disclosure(a: Assessment, disclosures: list[dict]) -> dict | None:
    """The most recent disclosure, with the discloser's age if known, for the case signal; when the discloser is
    under 18 it is also the signal's ``minor_disclosure``, which the ``minor_disclosure`` urgency rule reads
    (:data:`safehold.cases.taxonomy.URGENCY_RULES`)."""
    if not disclosures:
        return None
    d = disclosures[-1]
    age = (a.participants.get(d["author"]) or {}).get("age")
    return {**d, "age": age, "minor": age is not None and age < ADULT_AGE, "count": len(disclosures)}


# ----------------------------------------------------------------------------------------- batches


@dataclasses.dataclass(frozen=True)
class _Scored:
    """One request's messages, checked and parsed, waiting for its batch (:meth:`ConversationService.work`)."""

    actor: str
    conversation_id: str
    request: MessagesIn
    profiles: dict
    detectors: object


@dataclasses.dataclass
class _Stored:
    """A conversation's ``state`` column as scoring uses it: the scorer's state and the disclosures kept beside it.
    Assigned to the column as it is: the store's JSON encoder writes it through :meth:`to_json`, without a copy."""

    state: ConversationState
    disclosures: list[dict]

    @classmethod
    def read(cls, stored: dict | None) -> _Stored:
        """The column's value (``{}`` for a conversation not scored yet) as a state and its disclosures. (A batch
        run item by item reads each request's row again with ``FOR UPDATE``, which refreshes the ORM row: a
        second request of a conversation reads what the first wrote, as a dict.)"""
        state = ConversationState.from_dict(stored) if stored else ConversationState()
        return cls(state, list((stored or {}).get(_DISCLOSURES, [])))

    def to_json(self) -> dict:
        out = self.state.to_json()
        return {**out, _DISCLOSURES: self.disclosures} if self.disclosures else out


#: The conversation columns a batch reads (and the state as stored text, decoded only where it is not kept in the
#: process: safehold.rules.states), and those it writes back (the state first: _PostgresBatchSQL encodes it).
_ROW_READ = ("id", "external_id", "messages", "case_id", "case_score", "updated_at")
_ROW_UPDATE = (
    "state", "messages", "score", "level", "alert", "risk_author", "at_risk_author", "case_id", "case_score",
    "updated_at",
)  # fmt: skip
#: Message ids claimed per statement (parameters stay far below SQLite's and PostgreSQL's limits).
_CLAIMS_PER_STATEMENT = 1000


@dataclasses.dataclass
class _Row:
    """A conversation's row as a batch reads and changes it (plain attributes: what :meth:`_apply` and
    :meth:`_alert` use of :class:`Conversation`); ``changed`` when it must be written back."""

    id: int
    external_id: str
    messages: int
    case_id: int | None
    case_score: float | None
    updated_at: dt.datetime
    text: str | None = None  # the state column as stored; decoded only if the process does not keep this version
    state: _Stored | None = None
    score: float = 0.0
    level: str = "none"
    alert: bool = False
    risk_author: str | None = None
    at_risk_author: str | None = None
    changed: bool = False

    @property
    def version(self) -> tuple[int, dt.datetime]:
        """What tells this row's state from any other it had (safehold.rules.states): every write of the state
        adds messages and sets the update time."""
        return self.messages, self.updated_at

    def values(self) -> dict:
        return {"row_id": self.id, **{f"new_{k}": getattr(self, k) for k in _ROW_UPDATE}}


class _BatchSQL:
    """A batch's statements (:meth:`ConversationService._score_many`) in SQLAlchemy Core, for any dialect; built
    once, since building one costs more than running it from SQLAlchemy's compiled cache. ``insert`` is the
    dialect's (``ON CONFLICT``)."""

    def __init__(self, dialect: str):
        self.insert = pg_insert if dialect == "postgresql" else sqlite_insert
        table, messages = Conversation.__table__, ConversationMessage.__table__
        self._locked = (
            select(*(table.c[c] for c in _ROW_READ), cast(table.c.state, Text).label("text"))
            .where(table.c.external_id.in_(bindparam("ids", expanding=True)))
            .order_by(table.c.external_id)
            .with_for_update()
        )
        self._create = self.insert(table).on_conflict_do_nothing(index_elements=["external_id"])
        self._claim = (
            self.insert(messages)
            .on_conflict_do_nothing(index_elements=["conversation_id", "message_id"])
            .returning(messages.c.conversation_id, messages.c.message_id)
        )
        self._write_back = (
            update(table)
            .where(table.c.id == bindparam("row_id"))
            .values({k: bindparam(f"new_{k}") for k in _ROW_UPDATE})
        )

    def locked(self, s: Session, conversation_ids: list[str]) -> list[_Row]:
        """The conversations' rows, locked (``FOR UPDATE``) in id order, with their state as stored text."""
        return [_Row(**r._mapping) for r in s.execute(self._locked, {"ids": conversation_ids})]

    def create(self, s: Session, conversation_ids: list[str], now: dt.datetime) -> None:
        """New, empty conversations (an id created meanwhile by another writer is left as it is)."""
        s.execute(
            self._create,
            [
                {"external_id": c, "state": {}, "messages": 0, "score": 0.0, "level": "none", "alert": False,
                 "created_at": now, "updated_at": now}
                for c in conversation_ids
            ],
        )  # fmt: skip

    def claim(self, s: Session, pairs: list[tuple[int, str]], now: dt.datetime) -> list[tuple[int, str]]:
        """Claim (conversation row id, message id) pairs; those claimed now (the others were claimed before)."""
        params = [{"conversation_id": c, "message_id": m, "received_at": now} for c, m in pairs]
        return [(c, m) for c, m in s.execute(self._claim, params)]

    def write_back(self, s: Session, rows: list[_Row]) -> None:
        """Write the rows' changed columns back (one UPDATE per row, sent as one executemany)."""
        s.execute(self._write_back, [row.values() for row in rows])


class _PostgresBatchSQL(_BatchSQL):
    """The statements every batch runs, on PostgreSQL, sent on the driver's connection: none of SQLAlchemy's
    execution and result machinery (about 0.1 ms of CPU a statement, measured), and the ids as arrays, so a
    statement has one text whatever the batch's size (psycopg prepares it once; an expanding ``IN`` is rendered
    again for each size). At 2,000 chat messages/s on two API processes that is a tenth of the server's CPU per
    message. (The write-back as one ``UPDATE … FROM unnest(…)`` cost more than the executemany: measured.)
    Creating conversations, rare, stays in Core."""

    LOCKED = (
        f"SELECT {', '.join(_ROW_READ)}, state::text AS text FROM conversations "
        "WHERE external_id = ANY(%s::varchar[]) ORDER BY external_id FOR UPDATE"
    )
    CLAIM = (
        "INSERT INTO conversation_messages (conversation_id, message_id, received_at) "
        "SELECT c, m, %s FROM unnest(%s::bigint[], %s::varchar[]) AS v(c, m) "
        "ON CONFLICT (conversation_id, message_id) DO NOTHING RETURNING conversation_id, message_id"
    )
    #: The state is sent as JSON text (psycopg would send the encoder's bytes as bytea).
    WRITE_BACK = (
        f"UPDATE conversations SET {', '.join(f'{k} = %s' + ('::json' if k == 'state' else '') for k in _ROW_UPDATE)} "
        "WHERE id = %s"
    )

    @staticmethod
    def _cursor(s: Session):
        """A cursor of the session's own connection: in its transaction, committed or rolled back with it. The
        session is flushed first, as its own execute would (autoflush): what the ORM holds goes before."""
        s.flush()
        return s.connection().connection.driver_connection.cursor()

    def locked(self, s: Session, conversation_ids: list[str]) -> list[_Row]:
        with self._cursor(s) as cur:
            cur.execute(self.LOCKED, (conversation_ids,))
            return [_Row(*r) for r in cur.fetchall()]

    def claim(self, s: Session, pairs: list[tuple[int, str]], now: dt.datetime) -> list[tuple[int, str]]:
        with self._cursor(s) as cur:
            cur.execute(self.CLAIM, (now, [c for c, _ in pairs], [m for _, m in pairs]))
            return [(c, m) for c, m in cur.fetchall()]

    def write_back(self, s: Session, rows: list[_Row]) -> None:
        with self._cursor(s) as cur:
            cur.executemany(
                self.WRITE_BACK,
                [(jsoncodec.dumps(row.state), *(getattr(row, k) for k in _ROW_UPDATE[1:]), row.id) for row in rows],
            )


# ----------------------------------------------------------------------------------------- service


class ConversationService:
    def __init__(
        self,
        db: Database,
        audit: AuditService,
        pipeline: Pipeline,
        terms: TermLibrary,
        settings: Settings,
        ages: AgeBook | None = None,
        writes: GroupCommit | None = None,
    ):
        self.db = db
        self.writes = writes or GroupCommit(db)  # off unless given: one transaction per request
        self.ages = ages
        self.audit = audit
        self.pipeline = pipeline
        self.terms = terms
        self.settings = settings
        self.states = StateCache(settings.conversation_state_cache)
        dialect = db.engine.dialect.name
        self._sql = _PostgresBatchSQL(dialect) if dialect == "postgresql" else _BatchSQL(dialect)
        self._pruned_at: dt.datetime | None = None

    # ---------------------------------------------------------------- messages

    def add_messages(self, actor: str, conversation_id: str, body: dict) -> dict:
        """Score new messages into the conversation (created on first use); open or update its case on an alert.

        Returns ``{"conversation_id", "accepted", "duplicates", "assessment", "case"}``; ``case`` is the case
        linked to the conversation, if any.
        """
        return self.writes.run(*self.work(actor, conversation_id, body))

    def work(self, actor: str, conversation_id: str, body: dict) -> tuple[str, Work]:
        """:meth:`add_messages` checked and parsed, as its group-commit key and work (the ASGI hot path waits for
        it without a thread)."""
        check_id(conversation_id)
        request = parse(body)
        profiles = {name: Profile(age=p.age) for name, p in request.participants.items()}
        detectors = self.terms.current()  # the scorer and lists in force now (term lists may have changed)
        # One conversation's messages run in order on one writer, in a transaction shared with other requests'
        # (safehold.store.groupcommit); the message ids commit with the state, as before.
        # A batch's requests are run together (_score_many: a few statements per batch, not per request); alone
        # (group commit off, or the batch's fallback) by _score.
        scored = _Scored(actor, conversation_id, request, profiles, detectors)

        def alone(s: Session) -> dict:
            return self._score(s, actor, conversation_id, request, profiles, detectors)

        return f"conversation:{conversation_id}", Batched(self._score_many, scored, alone)

    def _score(self, s: Session, actor: str, conversation_id: str, request: MessagesIn, profiles: dict, detectors):
        """:meth:`add_messages`' reads and writes in ``s``: claim the new message ids, score them, store the
        state, record ages and alert; returns the answer."""
        insert = self._sql.insert
        lock_writes(s)
        row = self._locked(s, insert, conversation_id)

        def fresh(message_id: str) -> bool:  # claimed now, or already scored (a duplicate)
            claim = (
                insert(ConversationMessage)
                .values(conversation_id=row.id, message_id=message_id, received_at=utcnow())
                .on_conflict_do_nothing(index_elements=["conversation_id", "message_id"])
                .returning(ConversationMessage.message_id)
            )
            return s.execute(claim).scalar() is not None

        answer = self._apply(s, actor, row, _Stored.read(row.state), request, profiles, detectors, fresh)
        s.flush()
        return answer

    def _score_many(self, s: Session, batch: list[_Scored]) -> list[dict]:
        """:meth:`_score` for a batch's requests together (safehold.store.groupcommit.Batched), in :class:`_BatchSQL`:
        one locked read of all their conversations (plus one insert of those that are new), one claim of all
        their message ids (``INSERT … ON CONFLICT DO NOTHING RETURNING``), the scoring in memory, one update per
        conversation. Several requests for one conversation share its row, in arrival order, each seeing the
        state the one before it left, as they would one transaction after another; of a message id sent twice
        in the batch the first is scored, the others are duplicates. Alerts (rare) go through the pipeline in
        the same session, as alone. The states are kept in the process for the next batch (:attr:`states`)."""
        lock_writes(s)
        rows = self._locked_many(s, sorted({r.conversation_id for r in batch}))
        claimed = self._claim_many(s, rows, batch)
        cases = [row.case_id for row in rows.values() if row.case_id is not None]
        if cases:  # into the session's identity map: _apply's s.get reads them from there
            s.scalars(select(Case).where(Case.id.in_(cases))).all()
        answers = []
        for r in batch:
            row = rows[r.conversation_id]

            def fresh(message_id: str, row=row) -> bool:
                pair = (row.id, message_id)
                if pair in claimed:
                    claimed.discard(pair)  # the first of the batch to send it: a second is a duplicate
                    return True
                return False

            answers.append(self._apply(s, r.actor, row, row.state, r.request, r.profiles, r.detectors, fresh))
            row.changed = row.changed or answers[-1]["accepted"] > 0
        changed = [row for row in rows.values() if row.changed]
        if changed:
            self._sql.write_back(s, changed)
        for row in rows.values():  # as of this transaction's commit; if it fails, no row will have that version
            self.states.keep(row.id, row.version, row.state)
        return answers

    def _locked_many(self, s: Session, conversation_ids: list[str]) -> dict[str, _Row]:
        """:meth:`_locked` for several conversations: their rows (created if missing), locked, in id order, each
        with its state — kept in the process at the row's version (:attr:`states`), else decoded from the text read."""
        sql = self._sql
        found = {row.external_id: row for row in sql.locked(s, conversation_ids)}
        missing = [c for c in conversation_ids if c not in found]
        if missing:
            sql.create(s, missing, utcnow())
            found.update((row.external_id, row) for row in sql.locked(s, missing))
        if len(found) < len(conversation_ids):  # deleted by a concurrent prune or forget: the plain way retries
            raise Conflict("conversation.busy", "The conversation is changing too fast; retry.")
        for row in found.values():
            row.state = self.states.take(row.id, row.version)
            if row.state is None:
                row.state = _Stored.read(jsoncodec.loads(row.text) if row.text else None)
            row.text = None
        return found

    def _claim_many(self, s: Session, rows: dict[str, _Row], batch: list[_Scored]) -> set[tuple[int, str]]:
        """Claim every message id of the batch at once; the (conversation row id, message id) pairs new here."""
        pairs = list(dict.fromkeys((rows[r.conversation_id].id, m.id) for r in batch for m in r.request.messages))
        now = utcnow()
        claimed: set[tuple[int, str]] = set()
        for i in range(0, len(pairs), _CLAIMS_PER_STATEMENT):
            claimed.update(self._sql.claim(s, pairs[i : i + _CLAIMS_PER_STATEMENT], now))
        return claimed

    def _apply(
        self, s: Session, actor: str, row, stored: _Stored, request: MessagesIn, profiles: dict, detectors, fresh
    ) -> dict:
        """Score ``request``'s messages into the conversation ``row`` (an ORM row or a :class:`_Row`, changed in
        place) whose state is ``stored`` (changed in place too); ``fresh(message_id)`` says whether a message is
        new (claims it). Returns the request's answer."""
        scorer = detectors.grooming
        conversation_id = row.external_id
        state, disclosures = stored.state, stored.disclosures
        before = {name: set(a.stages) for name, a in state.authors.items()}
        disclosed = 0  # disclosures in this request: each goes to the case
        accepted = duplicates = 0
        assessment: Assessment | None = None
        stated: dict[str, tuple[int, str]] = {}  # author -> (age stated, message id): the latest in the batch
        for m in request.messages:
            if not fresh(m.id):
                duplicates += 1
                continue
            accepted += 1
            said = state.authors[m.author].age if m.author in state.authors else None
            assessment = scorer.add(state, Message(m.author, m.text, id=m.id, sent_at=m.sent_at), profiles)
            author = state.authors.get(m.author)
            if author is not None and author.age is not None and author.age != said:
                stated[m.author] = (author.age, m.id)
            phrases = victim_phrases(detectors.words, m.text)
            if phrases:
                disclosed += 1
                disclosures = [*disclosures, {"author": m.author, "message_id": m.id, "phrases": phrases}]
                disclosures = disclosures[-MAX_DISCLOSURES:]
        if assessment is None:
            assessment = with_disclosures(scorer.assessment(state), disclosures, self.settings)
        else:
            assessment = with_disclosures(assessment, disclosures, self.settings)
            stored.disclosures = disclosures
            row.state = stored
            row.messages = state.messages
            row.score, row.level, row.alert = assessment.score, assessment.level, assessment.alert
            row.risk_author, row.at_risk_author = assessment.risk_author, assessment.at_risk_author
            row.updated_at = utcnow()
        if accepted:
            self._record_ages(s, actor, conversation_id, stated, request.participants)
        case = s.get(Case, row.case_id) if row.case_id is not None else None
        ref = None
        if accepted and assessment.alert and (disclosed or self._news_for_case(row, case, assessment, before)):
            ref = self._alert(s, actor, row, assessment, disclosures)
        elif case is not None:
            ref = CaseRef(case.id, False, case.status, case.band, case.priority)
        return {
            "conversation_id": conversation_id,
            "accepted": accepted,
            "duplicates": duplicates,
            "assessment": assessment.to_dict(),
            "case": ref.to_dict() if ref is not None else None,
        }

    def _record_ages(
        self, s: Session, actor: str, conversation_id: str, stated: dict, participants: dict[str, ParticipantIn]
    ) -> None:
        """Ages stated in the chat and given by the platform, as age signals of the participants' accounts
        (accounts in order, so two batches never wait on each other's account locks)."""
        if self.ages is None:
            return
        cid = content_id(conversation_id)
        for account in sorted(set(stated) | {a for a, p in participants.items() if p.age is not None}):
            if account in stated:
                age, message_id = stated[account]
                ref = f"{cid}/{message_id}"
                self.ages.record_if_new(
                    s, "system", account, "chat", age, confidence=CHAT_CONFIDENCE, method="chat_statement",
                    provider="conversation", reference=ref if len(ref) <= 200 else cid,
                )  # fmt: skip
            given = participants.get(account)
            if given is not None and given.age is not None:
                self.ages.record_if_new(
                    s, actor, account, "platform", given.age, confidence=PARTICIPANT_CONFIDENCE,
                    method="conversation_participant", provider="conversation", reference=cid,
                )  # fmt: skip

    @staticmethod
    def _locked(s: Session, insert, conversation_id: str) -> Conversation:
        """The conversation's row, created if missing and locked for this transaction."""
        locked = select(Conversation).where(Conversation.external_id == conversation_id).with_for_update()
        for _ in range(5):
            row = s.scalars(locked).first()
            if row is not None:  # the common case: one read, no insert (and no sequence value burnt)
                return row
            s.execute(
                insert(Conversation)
                .values(
                    external_id=conversation_id,
                    state={},
                    messages=0,
                    score=0.0,
                    level="none",
                    alert=False,
                    created_at=utcnow(),
                    updated_at=utcnow(),
                )
                .on_conflict_do_nothing(index_elements=["external_id"])
            )
            row = s.scalars(locked).first()
            if row is not None:  # None only if a concurrent prune or forget deleted it in between
                return row
        raise Conflict("conversation.busy", "The conversation is changing too fast; retry.")

    @staticmethod
    def _news_for_case(row: Conversation, case: Case | None, a: Assessment, before: dict[str, set]) -> bool:
        """Whether an alerting assessment goes to a case: always when there is none (or it was closed and the
        alert brings new evidence); an open case only when the risk rose by ``RISE`` or a new stage appeared."""
        if case is None:
            return True
        rose = row.case_score is None or a.score >= row.case_score + RISE - 1e-9
        stages = set(a.participants[a.risk_author]["stages"]) if a.risk_author else set()
        new_stage = bool(stages - before.get(a.risk_author, set()))
        return rose or new_stage

    def _alert(self, s: Session, actor: str, row: Conversation, a: Assessment, disclosures: list[dict]) -> CaseRef:
        """Record the assessment as a detection (opens or updates the conversation's case) in ``s``. A
        disclosure alone (no risk author yet) is recorded as grooming: someone is harming the discloser."""
        risk_stages = set(a.participants[a.risk_author]["stages"]) if a.risk_author else set()
        category = "sextortion" if risk_stages & SEXTORTION_STAGES else "grooming"
        signal = DetectionSignal(
            source="grooming",
            signal_type="conversation",
            value=row.external_id,
            category=category,
            confidence=min(1.0, max(0.0, a.score)),
            detail={
                "level": a.level,
                "minor_at_risk": minor_at_risk(a),
                "disclosure": (disclosure := latest_disclosure(a, disclosures)),
                "minor_disclosure": disclosure if disclosure and disclosure["minor"] else None,
                "explanation": a.explanation,
                "stages": a.stages,
                "risk_author": a.risk_author,
                "at_risk_author": a.at_risk_author,
                "participants": a.participants,
                "messages": a.messages,
            },
        )
        detection = Detection(
            source="grooming",
            content_id=content_id(row.external_id),
            account_id=a.risk_author,
            signals=[signal],
            media_type="text",
            text="\n".join(a.explanation),
        )
        # The message ids are this door's idempotency, in this transaction; a grooming alert always opens a case.
        ref = self.pipeline.record(s, Submission(detection, source="grooming", opens=True), actor)
        row.case_id, row.case_score = ref.id, a.score
        self.audit.record(
            s,
            actor,
            "conversation.alert",
            f"conversation:{row.external_id}",
            {"case_id": ref.id, "created": ref.created, "score": a.score, "category": category, "messages": a.messages},
        )
        return ref

    # ---------------------------------------------------------------- reading

    def get(self, conversation_id: str) -> dict:
        """The conversation's stored summary and its current assessment (explanation and evidence excerpts)."""
        scorer = self.terms.current().grooming
        with self.db.session() as s:
            row = self._row(s, conversation_id)
            stored = _Stored.read(row.state)
            out = self._summary(s, row)
        assessment = with_disclosures(scorer.assessment(stored.state), stored.disclosures, self.settings)
        out["assessment"] = assessment.to_dict()
        return out

    def list(
        self, *, min_score: float = 0.0, alert: bool | None = None, limit: int = 50, offset: int = 0
    ) -> list[dict]:
        """Conversations, highest score first (without their assessments: see :meth:`get`)."""
        if not 1 <= limit <= MAX_LIMIT or offset < 0:
            raise SafeholdError("request.invalid_limit", f"limit must be between 1 and {MAX_LIMIT}, offset >= 0.")
        if not 0.0 <= min_score <= 1.0:
            raise SafeholdError("request.invalid_min_score", "min_score is between 0 and 1.")
        conds = [Conversation.score >= min_score] if min_score > 0 else []
        if alert is not None:
            conds.append(Conversation.alert == alert)
        q = (
            select(Conversation)
            .where(*conds)
            .order_by(Conversation.score.desc(), Conversation.updated_at.desc(), Conversation.id)
            .limit(limit)
            .offset(offset)
        )
        with self.db.session() as s:
            rows = s.scalars(q).all()
            cases = self._cases(s, [r.case_id for r in rows if r.case_id is not None])
            return [self._summary(s, r, cases) for r in rows]

    # ---------------------------------------------------------------- forgetting

    def forget(self, conversation_id: str, actor: str) -> dict:
        """Delete the conversation's state and message ids (its case, if any, stays)."""
        with self.db.session() as s:
            lock_writes(s)
            row = self._row(s, conversation_id, lock=True)
            n = s.execute(delete(ConversationMessage).where(ConversationMessage.conversation_id == row.id)).rowcount
            detail = {"messages": row.messages, "message_ids": n, "score": row.score, "case_id": row.case_id}
            s.delete(row)
            self.audit.record(s, actor, "conversation.forget", f"conversation:{conversation_id}", detail)
        return {"conversation_id": conversation_id, "forgotten": True, "messages": detail["messages"]}

    def prune(self, now: dt.datetime | None = None) -> int:
        """Forget conversations idle for ``settings.conversation_idle_days`` that have no open case, at most
        once an hour; returns how many were forgotten."""
        now = now or utcnow()
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
            return 0
        cutoff = now - dt.timedelta(days=self.settings.conversation_idle_days)
        closed = select(Case.id).where(Case.status == "closed")
        with self.db.session() as s:
            gone = s.scalars(
                delete(Conversation)
                .where(
                    Conversation.updated_at < cutoff,
                    or_(Conversation.case_id.is_(None), Conversation.case_id.in_(closed)),
                )
                .returning(Conversation.id)
            ).all()
            if gone:  # the foreign key cascades; this covers a database without foreign keys enforced
                for i in range(0, len(gone), 500):
                    chunk = gone[i : i + 500]
                    s.execute(delete(ConversationMessage).where(ConversationMessage.conversation_id.in_(chunk)))
                self.audit.record(
                    s,
                    "system",
                    "conversation.prune",
                    None,
                    {"conversations": len(gone), "idle_days": self.settings.conversation_idle_days},
                )
        self._pruned_at = now
        if gone:
            log.info("forgot %d idle conversations", len(gone))
        return len(gone)

    # ---------------------------------------------------------------- helpers

    @staticmethod
    def _row(s: Session, conversation_id: str, *, lock: bool = False) -> Conversation:
        q = select(Conversation).where(Conversation.external_id == conversation_id)
        row = s.scalars(q.with_for_update() if lock else q).first() if isinstance(conversation_id, str) else None
        if row is None:
            raise NotFound(
                "conversation.not_found",
                f"No conversation {conversation_id!r}.",
                detail={"conversation_id": conversation_id},
            )
        return row

    @staticmethod
    def _cases(s: Session, ids: list[int]) -> dict[int, Case]:
        if not ids:
            return {}
        return {c.id: c for c in s.scalars(select(Case).where(Case.id.in_(ids)))}

    def _summary(self, s: Session, row: Conversation, cases: dict[int, Case] | None = None) -> dict:
        if cases is None:
            cases = self._cases(s, [row.case_id] if row.case_id is not None else [])
        case = cases.get(row.case_id) if row.case_id is not None else None
        return {
            "conversation_id": row.external_id,
            "messages": row.messages,
            "score": row.score,
            "level": row.level,
            "alert": row.alert,
            "risk_author": row.risk_author,
            "at_risk_author": row.at_risk_author,
            "case": {"id": case.id, "status": case.status, "band": case.band} if case is not None else None,
            "case_score": row.case_score,
            "created_at": iso(row.created_at),
            "updated_at": iso(row.updated_at),
        }
