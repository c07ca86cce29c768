"""A large, realistic history for the transparency benchmark: one year of a busy platform's records in a Safehold
store (an embedded SQLite file under ``--home``, or a PostgreSQL database with ``--database-url``).

What it writes, for ``--cases N`` (default 1 000 000) over the calendar year ``--year`` (default: last year):

- 5 banks (two fed by the exchanges ``ncmec`` and ``industry-peer``, one imported list, two of the platform's own)
  with about N / 9 entries, the exchanges' entries added through the year with their publisher rows; the two
  exchanges are disabled (their settings are empty, and there is no real exchange behind them), so a server on the
  store neither fetches from them nor sends them the queued feedback;
- N cases: source (hash match 46 %, classifier 24 %, grooming 10 %, solicitation 8 %, user report 10 %,
  livestream 2 %), queue, band P0–P4, category, opened through the year; about 85 % closed after a log-normal
  review latency by band (median 30 min for P0 to 3 days for P4); decisions with A1–B2 classifications (``csam``)
  or a kind of exploitation (``cse``), a ``not_violating`` share by source (3 % of hash matches, 35 % of classifier
  hits …), a second review for new material; the rest open, escalated or awaiting confirmation;
- their items (one per media case), signals (about 1.3 per case: hash matches on the 5 banks, classifier hits,
  grooming, solicitation, user reports), decisions, and actions (automatic on a known match, after a decision by
  policy, and by hand);
- about N / 50 reports (NCMEC, some to the NCA) bundling 1–3 cases, with statuses and their timestamps;
- feedback sent to the exchanges on the cases that matched their entries, and some contributions;
- 40 reviewers (some with a lower daily cap) and their ``media.reveal`` audit records, written as a correct hash
  chain (the audit service's own hash function), under each reviewer's cap;
- scan counters (``scan_counts``, per day, channel, media and verdict) totalling ``--scans`` (default 10 000 000)
  and search counters.

The schema is made by the project's own migrations (``open_database(create=True)``, as ``safehold db upgrade``);
rows are written with SQLAlchemy Core's executemany in chunks of 10 000 (PostgreSQL: ``COPY``), ids assigned here
so related rows need no round trip. The store must be new. Everything comes from one seeded RNG.

Usage::

    python bench/transparency_data.py --home var/bench-transparency --cases 1000000
    python bench/transparency_data.py --home var/bench-pg --database-url postgresql+psycopg://postgres@127.0.0.1/bench

It prints (and writes to ``--out``) the rows written per table and the seconds taken.
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import itertools
import json
import math
import random
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: E402
from sqlalchemy import text  # noqa: E402

from safehold.audit.service import GENESIS, canonical, record_hash  # noqa: E402
from safehold.cases.taxonomy import SEVERITY  # noqa: E402
from safehold.config import Settings  # noqa: E402
from safehold.review.wellness import REVEAL  # noqa: E402
from safehold.store.db import Database, open_database  # noqa: E402
from safehold.store.models import Base  # noqa: E402

CHUNK = 10_000
HOUR = 3_600_000_000  # microseconds
DAY = 24 * HOUR
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

#: (source, queue, share of cases, share of closed cases found not violating)
SOURCES = (
    ("hash_match", "media", 0.46, 0.03),
    ("classifier", "media", 0.24, 0.35),
    ("grooming", "text", 0.10, 0.25),
    ("solicitation", "text", 0.08, 0.30),
    ("user_report", "report", 0.10, 0.55),
    ("livestream", "live", 0.02, 0.20),
)
#: (band, share, median review latency in hours, SLA in hours)
BANDS = (("P0", 0.02, 0.5, 1), ("P1", 0.10, 2, 4), ("P2", 0.28, 8, 24), ("P3", 0.35, 24, 72), ("P4", 0.25, 72, 168))
CLASSIFICATIONS = (("A1", 0.15), ("A2", 0.25), ("B1", 0.25), ("B2", 0.35))
#: (bank, entries per 1 000 cases, the exchange that feeds it or None, the import source or None, on_match)
BANKS = (
    ("ncmec-hashes", 45, "ncmec", None, "auto"),
    ("industry-peer-hashes", 25, "industry-peer", None, "case"),
    ("iwf-list", 30, None, "iwf", "auto"),
    ("own-confirmed", 6, None, None, "auto"),
    ("own-watchlist", 4, None, None, "case"),
)
EXCHANGES = (("ncmec", "ncmec"), ("industry-peer", "threatexchange"))
EXCHANGE_IDS = {name: i for i, (name, _) in enumerate(EXCHANGES, 1)}
CLASSIFIERS = ("opennsfw", "nudenet", "vendor-csam")
REVIEWERS = 40
#: Daily reveal caps a reviewer may have chosen (most keep the admin default of 300).
CAPS = (None, None, None, None, 200, 150, 100, 60)
SCAN_CELLS = (
    (("api", 0.97), ("cli", 0.03)),
    (("image", 0.80), ("video", 0.12), ("hash", 0.08)),
    (("no_match", 0.9965), ("match", 0.002), ("allowlisted", 0.001), ("unhashable", 0.0005)),
)
SEARCH_CELLS = (
    (("check", "allow", "", "", "en"), 0.90),
    (("check", "block", "csam", "", "en"), 0.004),
    (("check", "block", "minor_sexual", "", "en"), 0.002),
    (("check", "warn", "minor_ambiguous_sexual", "", "en"), 0.01),
    (("check", "warn", "sextortion", "", "en"), 0.003),
    (("check", "support", "support", "", "en"), 0.001),
    (("suggestion", "remove", "csam", "", ""), 0.07),
    (("help_click", "", "sextortion", "victim", "en"), 0.0004),
)


def pick(rng: random.Random, table: tuple, weight: int = 1):
    """One row of ``table`` drawn by the weight in column ``weight``."""
    return rng.choices(table, weights=[row[weight] for row in table])[0]


class Clock:
    """Timestamps as integer microseconds since the epoch, written the way each backend stores them: SQLite the
    text SQLAlchemy writes for ``DateTime`` (UTC wall clock, always six decimals), PostgreSQL aware datetimes."""

    def __init__(self, sqlite: bool, year: int):
        self.sqlite = sqlite
        self.start = int((dt.datetime(year, 1, 1, tzinfo=dt.UTC) - EPOCH).total_seconds()) * 1_000_000
        self.end = int((dt.datetime(year + 1, 1, 1, tzinfo=dt.UTC) - EPOCH).total_seconds()) * 1_000_000
        first = self.start // DAY - 60  # bank set-up happens before the year starts
        self.day_text = {first + i: (EPOCH + dt.timedelta(days=first + i)).date().isoformat() for i in range(800)}

    def days(self) -> list[str]:
        return [self.day_text[d] for d in range(self.start // DAY, self.end // DAY)]

    def text(self, us: int, sep: str = " ", end: str = "") -> str:
        day, rest = divmod(us, DAY)
        s, micro = divmod(rest, 1_000_000)
        h, s = divmod(s, 3600)
        m, s = divmod(s, 60)
        return f"{self.day_text[day]}{sep}{h:02d}:{m:02d}:{s:02d}.{micro:06d}{end}"

    def __call__(self, us: int | None):
        if us is None:
            return None
        return self.text(us) if self.sqlite else EPOCH + dt.timedelta(microseconds=us)

    def audit_text(self, us: int) -> str:
        """The timestamp as the audit log hashes it (``format_at``)."""
        return self.text(us, "T", "Z")


class Writer:
    """Inserts rows (tuples of final values) in chunks: executemany through SQLAlchemy Core on SQLite, ``COPY``
    on PostgreSQL; counts what it wrote."""

    def __init__(self, db: Database, clock: Clock, progress: Progress, task):
        self.db, self.clock = db, clock
        self.conn = db.engine.connect()
        self.sqlite = db.is_sqlite
        if self.sqlite:  # a bench store: losing it in a power cut costs a re-run, not data
            self.conn.exec_driver_sql("PRAGMA synchronous=OFF")
        self.rows: dict[str, int] = defaultdict(int)
        self.progress, self.task = progress, task

    def insert(self, table: str, columns: tuple[str, ...], rows: Iterable[tuple]) -> None:
        """Write ``rows`` (values for ``columns``); the table's other required columns get their model defaults
        (a plain SQL insert runs none of SQLAlchemy's Python-side defaults)."""
        extra = self._defaults(table, columns)
        columns = columns + tuple(extra)
        rest = tuple(extra.values())
        if rest:
            rows = (row + rest for row in rows)
        for chunk in _chunks(rows):
            if self.sqlite:
                marks = ", ".join("?" * len(columns))
                self.conn.exec_driver_sql(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", chunk)
            else:
                raw = self.conn.connection.driver_connection
                with raw.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in chunk:
                        copy.write_row(row)
            self.conn.commit()
            self.rows[table] += len(chunk)
            self.progress.update(self.task, advance=len(chunk), description=f"{table:24}")

    def _defaults(self, table: str, given: tuple[str, ...]) -> dict:
        out = {}
        for col in Base.metadata.tables[table].columns:
            if col.name in given or col.nullable or col.primary_key or col.default is None:
                continue
            value = col.default.arg(None) if col.default.is_callable else col.default.arg
            if isinstance(value, dict | list):
                value = json.dumps(value)
            elif isinstance(value, dt.datetime):
                value = self.clock(self.clock.start)
            out[col.name] = value
        return out

    def finish(self) -> None:
        """PostgreSQL: move each id sequence past the ids written here, so the application's inserts go on."""
        if not self.sqlite:
            for table in Base.metadata.sorted_tables:
                if "id" in table.c and table.c.id.autoincrement in (True, "auto") and self.rows.get(table.name):
                    self.conn.execute(
                        text(
                            f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                            f"(SELECT max(id) FROM {table.name}))"
                        )
                    )
        self.conn.commit()
        self.conn.close()


def _chunks(rows: Iterable[tuple]) -> Iterator[list[tuple]]:
    it = iter(rows)
    while chunk := list(itertools.islice(it, CHUNK)):
        yield chunk


def hexes(rng: random.Random, bits: int) -> str:
    return f"{rng.getrandbits(bits):0{bits // 4}x}"


class History:
    """One year of records, generated in the order the tables need (banks before signals, cases before reports)."""

    def __init__(self, w: Writer, clock: Clock, rng: random.Random, cases: int, scans: int):
        self.w, self.clock, self.rng = w, clock, rng
        self.n_cases, self.n_scans = cases, scans
        self.ts = clock
        self.bank_entries: dict[str, tuple[int, int]] = {}  # bank -> (first entry id, count)
        self.bank_ids: dict[str, int] = {}
        self.exchange_of_bank: dict[str, tuple[int, str]] = {}
        self.reviewers: list[str] = []
        self.caps: dict[str, int] = {}
        self.reveals: list[tuple] = []  # (at, actor, item id, case id, media type, sha256)
        self.reveal_days: dict[tuple[str, int], int] = defaultdict(int)
        self.reportable: list[tuple[int, str, int]] = []  # (case id, account, closed at)
        self.feedback: dict[tuple[int, int, str], tuple] = {}
        self.contributions: list[tuple] = []

    # ------------------------------------------------------------------ people, banks, exchanges

    def people(self) -> None:
        rng, ts = self.rng, self.ts
        rows = []
        for i in range(1, REVIEWERS + 4):
            name, role = (
                (f"rev{i:02d}", "reviewer") if i <= REVIEWERS else (f"senior{i - REVIEWERS}", "senior_reviewer")
            )
            cap = rng.choice(CAPS)
            prefs = {"daily_cap": cap} if cap else {}
            rows.append(
                (i, name, role, "!bench-no-login", json.dumps(prefs), ts(self.clock.start), ts(self.clock.start))
            )
            self.caps[f"user:{name}"] = min(cap or 300, 300)
            if role == "reviewer":
                self.reviewers.append(f"user:{name}")
        cols = ("id", "username", "role", "password_hash", "wellness", "created_at", "password_changed_at")
        self.w.insert("users", cols, rows)
        # Workload is uneven: a few reviewers do much of the reviewing (and meet their caps).
        self.weights = list(itertools.accumulate(1 / math.sqrt(i + 1) for i in range(REVIEWERS)))

    def reviewer(self) -> str:
        return self.reviewers[bisect.bisect(self.weights, self.rng.random() * self.weights[-1])]

    def banks(self) -> None:
        rng, ts, clock = self.rng, self.ts, self.clock
        start = ts(clock.start - 30 * DAY)
        bank_rows, entry_rows, publisher_rows = [], [], []
        next_entry = 1
        for bank_id, (name, per_thousand, exchange, source, on_match) in enumerate(BANKS, 1):
            self.bank_ids[name] = bank_id
            bank_rows.append((bank_id, name, "", "block", on_match, "{}", False, True, start, start))
            n = max(50, self.n_cases * per_thousand // 1000)
            self.bank_entries[name] = (next_entry, n)
            for i in range(n):
                entry_id = next_entry + i
                signal_type = "pdq" if i % 3 else "md5"
                value = hexes(rng, 256 if signal_type == "pdq" else 128)
                # An exchange's list arrives half at set-up, the rest through the year; imported lists at set-up.
                added = (
                    clock.start - DAY
                    if (exchange is None or rng.random() < 0.5)
                    else rng.randrange(clock.start, clock.end)
                )
                category = pick(rng, CLASSIFICATIONS)[0]
                entry_rows.append(
                    (entry_id, bank_id, signal_type, value, value, exchange or source, f"X-{entry_id}", category,
                     "{}", True, False, f"exchange:{exchange}" if exchange else "bench", ts(added), ts(added))
                )  # fmt: skip
                if exchange or source:
                    publisher = f"exchange:{EXCHANGE_IDS[exchange]}" if exchange else f"source:{source}"
                    publisher_rows.append((entry_id, publisher, f"X-{entry_id}"))
            next_entry += n
        self.w.insert(
            "banks",
            ("id", "name", "description", "kind", "on_match", "thresholds", "dihedral", "enabled", "created_at",
             "updated_at"),
            bank_rows,
        )  # fmt: skip
        self.w.insert(
            "bank_entries",
            ("id", "bank_id", "signal_type", "value", "fingerprint", "source", "external_id", "category", "metadata",
             "enabled", "withdrawn", "added_by", "added_at", "updated_at"),
            entry_rows,
        )  # fmt: skip
        self.w.insert(
            "bank_entry_publishers",
            ("entry_id", "publisher", "external_id"),
            publisher_rows,
        )
        ex_rows = []
        for name, type_name in EXCHANGES:
            ex_id, bank = EXCHANGE_IDS[name], next(b[0] for b in BANKS if b[2] == name)
            self.exchange_of_bank[bank] = (ex_id, name)
            # Disabled: the settings are empty (ThreatExchange's need privacy groups) and no exchange is behind them;
            # an enabled one would fail every round on a server started on this store.
            ex_rows.append((ex_id, name, type_name, self.bank_ids[bank], False, "{}", 3600, "{}", "{}", start, start))
        cols = ("id", "name", "type", "bank_id", "enabled", "settings", "every_seconds", "unknown_types", "last_round",
                "created_at", "updated_at")  # fmt: skip
        self.w.insert("exchanges", cols, ex_rows)

    # ------------------------------------------------------------------ cases and what hangs off them

    def cases(self) -> None:
        tables: dict[str, list] = defaultdict(list)
        ids = {"item": 0, "signal": 0, "decision": 0, "action": 0}
        for case_id in range(1, self.n_cases + 1):
            self._case(case_id, tables, ids)
            if case_id % CHUNK == 0 or case_id == self.n_cases:
                for table in CASE_TABLES:  # parents first: the foreign keys are checked
                    self.w.insert(table, COLUMNS[table], tables[table])
                tables.clear()

    def _case(self, case_id: int, out: dict[str, list], ids: dict[str, int]) -> None:
        rng, ts, clock = self.rng, self.ts, self.clock
        source, queue, _, fp_share = pick(rng, SOURCES, 2)
        band, _, median_h, sla_h = pick(rng, BANDS)
        # Volume grows through the year (density 1 + 0.4 x over the year's fraction x: the inverse of its CDF).
        x = (math.sqrt(1 + 0.96 * rng.random()) - 1) / 0.4
        opened = clock.start + int((clock.end - clock.start) * x)
        opened = min(opened, clock.end - HOUR)
        account = f"acct-{rng.randrange(1, max(2, self.n_cases // 3))}"
        content = f"content-{case_id}"
        known = source == "hash_match"
        media = queue in ("media", "live") or (source == "user_report" and rng.random() < 0.6)
        item_id = sha = media_type = None
        if media:
            ids["item"] += 1
            item_id, sha = ids["item"], hexes(rng, 256)
            media_type = "video" if source == "livestream" or rng.random() < 0.15 else "image"
            out["case_items"].append(
                (item_id, case_id, content, media_type, sha, hexes(rng, 128), rng.randrange(20_000, 5_000_000),
                 "{}", ts(opened))
            )  # fmt: skip
        category, confidence, exchange_hit = self._signals(case_id, source, item_id, opened, out, ids)
        severity = SEVERITY.get(category, 0.4)
        latency = int(median_h * HOUR * math.exp(rng.gauss(0, 1.0)))
        decided = opened + max(latency, 60_000_000)
        status, decision, classification, decider = "open", None, None, None
        confirmer = confirmed = closed = None
        # Decided within the year, most cases (the share is set so that about 85 % end up closed, after the
        # decisions made too late in the year and the new material still awaiting its second reviewer).
        if decided < clock.end and rng.random() < 0.85 / 0.97:
            decision = "not_violating" if rng.random() < fp_share else self._violating(source, media)
            classification = pick(rng, CLASSIFICATIONS)[0] if decision == "csam" else None
            if decision == "cse":
                classification = (
                    source if source in ("grooming", "solicitation") else rng.choice(("sextortion", "other"))
                )
            decider = self.reviewer()
            status, closed = "closed", decided
            if decision != "not_violating" and not known:  # new material: a second reviewer confirms
                confirmed = decided + int(4 * HOUR * math.exp(rng.gauss(0, 1.0)))
                if confirmed < clock.end and rng.random() < 0.95:
                    confirmer, closed = self._other(decider), confirmed
                else:
                    status, closed, confirmed = "awaiting_confirmation", None, None
        elif rng.random() < 0.1:
            status = "escalated"
        if status == "closed":
            self._decisions(case_id, decision, classification, decider, decided, confirmer, confirmed, out, ids)
            self._to_exchanges(case_id, decision, classification, decided, confirmer, confirmed, exchange_hit)
            if item_id is not None:
                self._reveal(decider, decided, item_id, case_id, media_type, sha, 1 if known else rng.randint(1, 3))
                if confirmer:
                    self._reveal(confirmer, confirmed, item_id, case_id, media_type, sha, 1)
            if decision == "csam":
                self.reportable.append((case_id, account, closed))
        self._actions(case_id, source, known, decision, decider, opened, closed, out, ids)
        out["cases"].append(
            (case_id, f"content:{content}", None if status == "closed" else f"content:{content}", content, account,
             source, queue, status, category, severity, confidence, severity * confidence, band,
             ts(opened + sla_h * HOUR), known, "{}", decision, classification, decider,
             ts(decided if decision else None), confirmer, ts(confirmed), ts(opened), ts(closed or opened), ts(closed))
        )  # fmt: skip

    def _violating(self, source: str, media: bool) -> str:
        if source in ("grooming", "solicitation"):
            return "cse"
        if source == "user_report":
            return "csam" if media else "cse"
        return "csam"

    def _other(self, reviewer: str) -> str:
        while (other := self.reviewer()) == reviewer:
            pass
        return other

    def _signals(self, case_id, source, item_id, opened, out, ids) -> tuple[str, float, tuple | None]:
        """The case's signals (one, and a second for about 30 %); returns the case's category and confidence, and
        the exchange entry its first signal matched (or None)."""
        rng, ts = self.rng, self.ts
        kinds = [source]
        if rng.random() < 0.3:
            kinds.append("classifier" if item_id else rng.choice(("grooming", "solicitation")))
        category, confidence, exchange_hit = "other", 0.5, None
        for n, kind in enumerate(kinds):
            ids["signal"] += 1
            bank = entry_id = signal_type = value = distance = None
            if (
                kind in ("hash_match", "livestream")
                and item_id is not None
                and (kind == "hash_match" or rng.random() < 0.5)
            ):
                bank = pick(rng, BANKS)[0]
                first, count = self.bank_entries[bank]
                entry_id = first + rng.randrange(count)
                signal_type = "pdq" if (entry_id - first) % 3 else "md5"
                value = hexes(rng, 256 if signal_type == "pdq" else 128)
                distance = rng.randrange(0, 32) if signal_type == "pdq" else 0
                cat, conf, kind = pick(rng, CLASSIFICATIONS)[0], 1.0 - (distance or 0) / 64, "hash_match"
                if n == 0 and bank in self.exchange_of_bank:
                    exchange_hit = (self.exchange_of_bank[bank], entry_id, signal_type, value)
            elif kind in ("classifier", "livestream"):
                signal_type, cat, conf, kind = (
                    rng.choice(CLASSIFIERS),
                    "csam",
                    round(rng.uniform(0.6, 1.0), 3),
                    "classifier",
                )
            elif kind == "user_report":
                cat, conf = rng.choice(("csam", "grooming", "sextortion")), 0.5
            else:
                cat, conf = kind, round(rng.uniform(0.55, 0.99), 3)
            if n == 0:
                category, confidence = cat, conf
            out["case_signals"].append(
                (ids["signal"], case_id, item_id if kind in ("hash_match", "classifier") else None, kind, signal_type,
                 value, bank, entry_id, cat, conf, distance, "{}", ts(opened + n * 1000))
            )  # fmt: skip
        return category, confidence, exchange_hit

    def _decisions(self, case_id, decision, classification, decider, decided, confirmer, confirmed, out, ids) -> None:
        ts = self.ts
        ids["decision"] += 1
        out["case_decisions"].append(
            (ids["decision"], case_id, "decide", decision, classification, decider, ts(decided))
        )
        if confirmer:
            ids["decision"] += 1
            out["case_decisions"].append(
                (ids["decision"], case_id, "confirm", decision, classification, confirmer, ts(confirmed))
            )

    def _to_exchanges(self, case_id, decision, classification, decided, confirmer, confirmed, exchange_hit) -> None:
        """Feedback to the exchange whose entry the case matched (one opinion per entry and verdict), or for some
        confirmed new material, its hashes contributed to the peer exchange."""
        ts = self.ts
        if exchange_hit is not None:
            (ex_id, ex_name), entry_id, signal_type, value = exchange_hit
            verdict = "false_positive" if decision == "not_violating" else "true_positive"
            sent = confirmed or decided
            key = (ex_id, entry_id, verdict)
            if key not in self.feedback and sent + HOUR < self.clock.end:
                self.feedback[key] = (ex_id, ex_name, entry_id, f"X-{entry_id}", signal_type, value, verdict,
                                      decision, classification, case_id, "sent", 1, ts(sent + 600_000_000),
                                      ts(sent), ts(sent + 600_000_000), ts(sent + 600_000_000))  # fmt: skip
        elif confirmer and decision == "csam" and self.rng.random() < 0.05:
            peer = "industry-peer"
            at = ts(confirmed + 2 * HOUR)
            self.contributions.append((case_id, EXCHANGE_IDS[peer], peer, "sent", 3, 3, "user:senior1", at))

    def _actions(self, case_id, source, known, decision, decider, opened, closed, out, ids) -> None:
        rng, ts = self.rng, self.ts
        fired = []
        if known and rng.random() < 0.6:  # an auto bank: removed at once, evidence kept
            fired += [("remove_content", "known-csam-auto", "system", opened + 1_000_000),
                      ("preserve_evidence", "known-csam-auto", "system", opened + 1_000_000)]  # fmt: skip
        if decision in ("csam", "cse") and closed:
            fired.append(("remove_content", f"{decision}-confirmed", decider, closed))
            if rng.random() < 0.3:
                fired.append(("suspend_account", f"{decision}-confirmed", decider, closed))
            if decision == "csam":
                fired.append(("open_report_draft", "csam-confirmed", decider, closed))
            if rng.random() < 0.03:
                fired.append(("restrict_account", None, "user:senior1", closed + 2 * HOUR))
        for kind, policy, actor, at in fired:
            ids["action"] += 1
            out["case_actions"].append(
                (ids["action"], case_id, kind, "{}", policy, actor, f"{case_id}:{policy or ''}:{kind}", ts(at), ts(at))
            )

    def _reveal(self, actor, at, item_id, case_id, media_type, sha, n) -> None:
        """``n`` reveals of the item by ``actor`` in the minutes before ``at``, as far as the actor's cap allows."""
        for _ in range(n):
            when = at - self.rng.randrange(1_000_000, 600_000_000)
            day = (actor, when // DAY)
            if self.reveal_days[day] >= self.caps[actor]:
                return
            self.reveal_days[day] += 1
            self.reveals.append((when, actor, item_id, case_id, media_type, sha))

    # ------------------------------------------------------------------ reports, exchanges, audit, counters

    def reports(self) -> None:
        rng, ts, clock = self.rng, self.ts, self.clock
        rng.shuffle(self.reportable)
        target = max(1, self.n_cases // 50)
        reports, links = [], []
        it = iter(self.reportable)
        for report_id in range(1, target + 1):
            bundle = list(itertools.islice(it, rng.choice((1, 1, 1, 2, 3))))
            if not bundle:
                break
            created = max(c[2] for c in bundle) + int(HOUR * rng.uniform(0.2, 24))
            if created >= clock.end:
                created = clock.end - HOUR
            authority = "nca" if rng.random() < 0.03 else "ncmec"
            incident = f"account:{bundle[0][1]}"
            status = rng.choices(("finished", "submitted", "failed", "retracted", "draft"), (90, 2, 1, 3, 4))[0]
            submitted = created + int(HOUR * rng.uniform(0.5, 48)) if status != "draft" else None
            finished = submitted + int(60_000_000 * rng.uniform(1, 30)) if status == "finished" else None
            retracted = (submitted or created) + HOUR if status == "retracted" else None
            updated = max(x for x in (created, submitted, finished, retracted) if x is not None)
            if status == "failed":
                updated += 3 * HOUR
            external = f"{'NCA' if authority == 'nca' else ''}{100_000_000 + report_id}" if finished else None
            reports.append(
                (report_id, authority, incident, f"{authority}:{incident}:{report_id}" if status == "draft" else None,
                 bundle[0][1], status, "{}", external, "production" if authority == "ncmec" else None,
                 "finished" if finished else "", 0, "user:legal1", ts(created), ts(updated),
                 "user:legal1" if submitted else None, ts(submitted), ts(finished),
                 "user:legal1" if retracted else None, ts(retracted))
            )  # fmt: skip
            links += [(report_id, c[0]) for c in bundle]
        self.w.insert("reports", COLUMNS["reports"], reports)
        self.w.insert("report_cases", ("report_id", "case_id"), links)

    def exchanges(self) -> None:
        self.w.insert("exchange_feedback", COLUMNS["exchange_feedback"], self.feedback.values())
        self.w.insert("exchange_contributions", COLUMNS["exchange_contributions"], self.contributions)

    def audit(self) -> None:
        """The reveals as ``media.reveal`` records, chained after the log's head like the audit service does."""
        conn = self.w.conn
        head = conn.execute(text("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")).first()
        seq, prev = (head[0], head[1]) if head else (0, GENESIS)
        self.reveals.sort()

        def records() -> Iterator[tuple]:
            nonlocal seq, prev
            for at, actor, item_id, case_id, media_type, sha in self.reveals:
                seq += 1
                target = f"case_item:{item_id}"
                detail = {"case_id": case_id, "filename": None, "media_type": media_type, "sha256": sha}
                h = record_hash(seq, self.clock.audit_text(at), actor, REVEAL, target, detail, prev)
                yield (seq, self.ts(at), actor, REVEAL, target, canonical(detail), prev, h)
                prev = h

        self.w.insert("audit_log", ("seq", "at", "actor", "action", "target", "detail", "prev_hash", "hash"), records())
        self.audit_head = prev

    def counters(self) -> None:
        rng = self.rng
        days = self.clock.days()
        cells = list(itertools.product(*SCAN_CELLS))
        daily = _spread(rng, self.n_scans, [1 + 0.4 * i / len(days) + rng.uniform(-0.1, 0.1) for i in range(len(days))])
        rows = []
        for day, total in zip(days, daily, strict=True):
            counts = _spread(rng, total, [c[0][1] * c[1][1] * c[2][1] for c in cells], jitter=False)
            rows += [(day, c[0][0], c[1][0], c[2][0], n) for c, n in zip(cells, counts, strict=True) if n]
        self.w.insert("scan_counts", ("day", "channel", "media", "verdict", "count"), rows)
        searches = _spread(rng, self.n_scans // 5, [1.0] * len(days))
        rows = []
        for day, total in zip(days, searches, strict=True):
            counts = _spread(rng, total, [w for _, w in SEARCH_CELLS], jitter=False)
            rows += [(day, *key, n) for (key, _), n in zip(SEARCH_CELLS, counts, strict=True) if n]
        self.w.insert("search_counts", ("day", "kind", "action", "category", "variant", "locale", "count"), rows)


def _spread(rng: random.Random, total: int, weights: list[float], jitter: bool = True) -> list[int]:
    """``total`` split by ``weights`` into whole numbers that add up to it exactly."""
    if jitter:
        weights = [w * rng.uniform(0.9, 1.1) for w in weights]
    s = sum(weights)
    parts = [int(total * w / s) for w in weights]
    parts[max(range(len(parts)), key=weights.__getitem__)] += total - sum(parts)
    return parts


COLUMNS = {
    "cases": ("id", "subject_key", "open_key", "content_id", "account_id", "source", "queue", "status", "category",
              "severity", "confidence", "priority", "band", "due_at", "known_match", "metadata", "decision",
              "classification", "decided_by", "decided_at", "confirmed_by", "confirmed_at", "opened_at", "updated_at",
              "closed_at"),
    "case_items": ("id", "case_id", "content_id", "media_type", "sha256", "md5", "size", "metadata", "added_at"),
    "case_signals": ("id", "case_id", "item_id", "source", "signal_type", "value", "bank", "entry_id", "category",
                     "confidence", "distance", "detail", "at"),
    "case_decisions": ("id", "case_id", "kind", "decision", "classification", "actor", "at"),
    "case_actions": ("id", "case_id", "kind", "params", "policy", "actor", "dedupe_key", "created_at", "done_at"),
    "reports": ("id", "authority", "incident_key", "open_key", "account_id", "status", "fields", "external_id",
                "environment", "step", "attempts", "created_by", "created_at", "updated_at", "submitted_by",
                "submitted_at", "finished_at", "retracted_by", "retracted_at"),
    "exchange_feedback": ("exchange_id", "exchange_name", "entry_id", "external_id", "signal_type", "value", "verdict",
                          "reason", "category", "case_id", "status", "attempts", "next_at", "created_at", "updated_at",
                          "sent_at"),
    "exchange_contributions": ("case_id", "exchange_id", "exchange_name", "status", "hashes", "accepted", "actor",
                               "at"),
}  # fmt: skip


CASE_TABLES = ("cases", "case_items", "case_signals", "case_decisions", "case_actions")


def expected_rows(cases: int) -> int:
    """A rough total for the progress bar (rows per case, plus the banks and counters)."""
    return int(cases * 6.6) + sum(max(50, cases * b[1] // 1000) for b in BANKS) * 2 + 10_000


def generate(settings: Settings, cases: int, scans: int, seed: int, year: int, quiet: bool = False) -> dict:
    started = time.perf_counter()
    db = open_database(settings, create=True)
    try:
        with db.engine.connect() as conn:
            if conn.execute(text("SELECT count(*) FROM cases")).scalar():
                raise SystemExit("the store already has cases: generate into a new home or database")
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, disable=quiet) as progress:
            task = progress.add_task("start", total=expected_rows(cases))
            clock = Clock(db.is_sqlite, year)
            w = Writer(db, clock, progress, task)
            h = History(w, clock, random.Random(seed), cases, scans)
            steps = {"migrate": round(time.perf_counter() - started, 2)}
            for step in (h.people, h.banks, h.cases, h.reports, h.exchanges, h.audit, h.counters):
                at = time.perf_counter()
                step()
                steps[step.__name__] = round(time.perf_counter() - at, 2)
            w.finish()
            progress.update(task, completed=progress.tasks[0].total)
    finally:
        db.dispose()
    return {
        "database": "sqlite" if db.is_sqlite else "postgresql",
        "year": year,
        "seed": seed,
        "cases": cases,
        "scans": scans,
        "rows": dict(sorted(w.rows.items())),
        "rows_total": sum(w.rows.values()),
        "audit_head": h.audit_head,  # the same seed and size give the same chain, on either backend
        "seconds": round(time.perf_counter() - started, 2),
        "steps_seconds": steps,
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--home", type=Path, default=ROOT / "var" / "bench-transparency", help="the store's home")
    p.add_argument("--database-url", default=None, help="PostgreSQL URL (default: SQLite under --home)")
    p.add_argument("--cases", type=int, default=1_000_000)
    p.add_argument("--scans", type=int, default=10_000_000)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--year", type=int, default=dt.datetime.now(dt.UTC).year - 1)
    p.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    if a.cases < 1 or a.scans < 0:
        p.error("--cases must be at least 1 and --scans at least 0")
    settings = Settings(home=a.home, database_url=a.database_url)
    out = generate(settings, a.cases, a.scans, a.seed, a.year, a.quiet)
    text_out = json.dumps(out, indent=2)
    print(text_out)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text_out + "\n")
    return out


if __name__ == "__main__":
    main()
