"""Stored, versioned term lists and the text detectors built from them, reloaded without a restart.

What the detectors match is the union of the *active* lists: the bundled ``starter`` and ``grooming`` lists
(``safehold/text/lists``) and every list an operator imported (a partner's list such as IWF's, the platform's own
slang). A stored list named like a bundled one replaces it; disabling it switches the bundled list off too.

Every import is a new version kept as the CSV it came from (``term_list_versions``); ``term_lists`` says which
version of each list is active and whether it is enabled. Rolling back is activating an older version.

Hot reload: every process polls the tiny ``term_lists`` table (name, version, enabled) in its upkeep loop
(:meth:`TermLibrary.sync`, every ``SAFEHOLD_INDEX_SYNC_INTERVAL`` seconds). When that fingerprint changes it builds
new detectors off to the side and swaps them in one assignment, so a request in flight finishes on the old set
and the next one sees the new; a change made in this process is applied before the call that made it returns.

Terms in ``grooming.<stage>`` categories feed the grooming scorer; all others feed the search guard and the
solicitation scorer (so a grooming cue such as "you're so mature" never counts as a solicitation signal).
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from safehold.audit import AuditService
from safehold.errors import Conflict, NotFound, SafeholdError
from safehold.rules.reload import HotReloaded
from safehold.store.db import Database
from safehold.store.models import TermListRow, TermListVersion, iso
from safehold.text.grooming.model import GroomingModel
from safehold.text.grooming.scorer import CATEGORY_PREFIX, GroomingScorer
from safehold.text.search import QueryGuard
from safehold.text.solicitation import SolicitationScorer
from safehold.text.terms import Matcher, TermList, load_list

log = logging.getLogger(__name__)

BUNDLED = ("starter", "grooming")
MAX_CSV_BYTES = 64 * 1024 * 1024
#: A list's name, as the API's schema publishes it (JSON Schema ``pattern``) and :func:`check_name` applies it.
NAME_PATTERN = "^[a-z0-9_]{1,64}$"
_NAME = re.compile(NAME_PATTERN)
_VERSION_LINE = re.compile(r"^#\s*version\s*:\s*(\d{1,9})\s*$", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class TextDetectors:
    """One consistent set of detectors built from one set of lists; replaced whole on a change, never mutated."""

    fingerprint: tuple
    lists: tuple[dict, ...]
    words: Matcher  # every non-grooming term: what the guard, the solicitation scorer and disclosures read
    guard: QueryGuard
    solicitation: SolicitationScorer
    grooming: GroomingScorer


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise SafeholdError(
            "terms.invalid_name", "A term list name is 1 to 64 characters: lower-case letters, digits and '_'."
        )
    return name


class TermLibrary(HotReloaded):
    """The term lists of this installation and the detectors built from them (thread-safe)."""

    def __init__(
        self,
        db: Database,
        audit: AuditService,
        *,
        grooming_model: GroomingModel | None = None,
        alert_threshold: float = 0.7,
    ):
        self.db = db
        self.audit = audit
        self.grooming_model = grooming_model
        self.alert_threshold = alert_threshold
        self._current: TextDetectors | None = None
        self._reload_lock = threading.Lock()
        # name -> (sha256, parsed list) of the version last imported or loaded here: parsing a large list takes
        # seconds, and an import is followed at once by a rebuild that needs it again.
        self._parsed: dict[str, tuple[str, TermList]] = {}

    # ---------------------------------------------------------------- detectors

    def current(self) -> TextDetectors:
        """The detectors in force (built on first use; after that one attribute read)."""
        return super().current()

    def _fingerprint(self) -> tuple:
        with self.db.session() as s:
            rows = s.execute(select(TermListRow.name, TermListRow.version, TermListRow.enabled)).all()
        return tuple(sorted((r.name, r.version, r.enabled) for r in rows))

    def _built(self, value: TextDetectors) -> None:
        log.info("text detectors built from %s", ", ".join(f"{d['name']} v{d['version']}" for d in value.lists))

    def _build(self, fingerprint: tuple) -> TextDetectors:
        stored = {name: (version, enabled) for name, version, enabled in fingerprint}
        lists: list[TermList] = []
        info: list[dict] = []
        with self.db.session() as s:
            for name in BUNDLED:
                if name not in stored:
                    tl = load_list(name)
                    lists.append(tl)
                    info.append(_info(tl, "bundled"))
            for name, (version, enabled) in sorted(stored.items()):
                if enabled:
                    tl = self._load(s, name, version)
                    lists.append(tl)
                    info.append(_info(tl, "stored"))
        merged = lists[0].merged(*lists[1:], name="active") if lists else TermList("active", 0, ())
        cues = tuple(t for t in merged.terms if t.category.startswith(CATEGORY_PREFIX))
        other = tuple(t for t in merged.terms if not t.category.startswith(CATEGORY_PREFIX))
        words = Matcher(other)  # one automaton for the guard and the solicitation scorer
        return TextDetectors(
            fingerprint=fingerprint,
            lists=tuple(info),
            words=words,
            guard=QueryGuard(words),
            solicitation=SolicitationScorer(words),
            grooming=GroomingScorer(
                cues=TermList("grooming", merged.version, cues, merged.sources),
                model=self.grooming_model,
                alert_threshold=self.alert_threshold,
            ),
        )

    # ---------------------------------------------------------------- reading

    def lists(self) -> list[dict]:
        """Every list: the bundled ones and the stored ones, with their active version and whether it is on."""
        with self.db.session() as s:
            rows = {r.name: r for r in s.scalars(select(TermListRow))}
            counts = dict(s.execute(select(TermListVersion.name, func.count()).group_by(TermListVersion.name)).all())
            out = []
            for name in sorted(set(BUNDLED) | set(rows)):
                row = rows.get(name)
                if row is None:
                    bundled = {"replaces_bundled": False, "enabled": True, "versions": 0, "sha256": None}
                    out.append({**_info(load_list(name), "bundled"), **bundled, "updated_by": None, "updated_at": None})
                    continue
                v = self._version_row(s, name, row.version)
                out.append(
                    {
                        "name": name,
                        "version": row.version,
                        "origin": "stored",
                        "replaces_bundled": name in BUNDLED,
                        "terms": v.terms,
                        "enabled": row.enabled,
                        "versions": counts.get(name, 0),
                        "sha256": v.sha256,
                        "updated_by": row.updated_by,
                        "updated_at": iso(row.updated_at),
                    }
                )
            return out

    def versions(self, name: str) -> list[dict]:
        check_name(name)
        with self.db.session() as s:
            rows = s.scalars(
                select(TermListVersion).where(TermListVersion.name == name).order_by(TermListVersion.version)
            ).all()
            active = s.get(TermListRow, name)
            if not rows and name not in BUNDLED:
                raise _not_found(name)
            return [
                {
                    "version": r.version,
                    "terms": r.terms,
                    "sha256": r.sha256,
                    "active": active is not None and active.version == r.version,
                    "created_by": r.created_by,
                    "created_at": iso(r.created_at),
                }
                for r in rows
            ]

    def export_csv(self, name: str, version: int | None = None) -> str:
        """The list as CSV: a stored version exactly as imported, or the bundled list."""
        check_name(name)
        with self.db.session() as s:
            row = s.get(TermListRow, name)
            if version is None and row is not None:
                version = row.version
            if version is not None:
                return self._version_row(s, name, version).csv
        if name in BUNDLED:
            return load_list(name).to_csv()
        raise _not_found(name)

    # ---------------------------------------------------------------- changes

    def put(self, name: str, data: bytes | str, actor: str, *, version: int | None = None) -> dict:
        """Import a new version of ``name`` from CSV and make it the active one.

        The version is ``version``, else the file's ``# version: N`` line, else one more than the highest known.
        Importing the same CSV under a version that already holds it changes nothing (a safe retry); a different
        CSV under an existing version is refused.
        """
        check_name(name)
        if isinstance(data, str):
            data = data.encode("utf-8")
        if len(data) > MAX_CSV_BYTES:
            raise SafeholdError(
                "terms.too_large", f"A term list is at most {MAX_CSV_BYTES // (1024 * 1024)} MiB.", status=413
            )
        parsed = TermList.from_csv(data, name=name)  # validates every row; raises terms.invalid_csv
        text = data.decode("utf-8-sig")
        if version is None:
            m = _VERSION_LINE.search(text)
            version = int(m.group(1)) if m else None
        if version is not None and not 1 <= version <= 999_999_999:
            raise SafeholdError("terms.invalid_version", "A version is a whole number from 1 to 999999999.")
        sha = hashlib.sha256(data).hexdigest()
        with self.db.session() as s:
            if version is None:
                version = self._next_version(s, name)
            existing = _find(s, name, version)
            if existing is not None and existing.sha256 != sha:
                raise Conflict(
                    "terms.version_exists",
                    f"Version {version} of {name!r} already holds a different list; import it as a new version.",
                    detail={"name": name, "version": version},
                )
            if existing is None:
                s.add(
                    TermListVersion(
                        name=name, version=version, csv=text, sha256=sha, terms=len(parsed.terms), created_by=actor
                    )
                )
            changed = self._activate(s, name, version, actor)
            if existing is None or changed:
                self.audit.record(
                    s,
                    actor,
                    "terms.import",
                    f"terms:{name}",
                    {"version": version, "terms": len(parsed.terms), "sha256": sha, "new": existing is None},
                )
        self._parsed[name] = (sha, TermList(name, version, parsed.terms, parsed.sources))
        self.sync()
        return {
            "name": name,
            "version": version,
            "terms": len(parsed.terms),
            "sha256": sha,
            "created": existing is None,
        }

    def activate(self, name: str, version: int, actor: str) -> dict:
        """Make an imported version the active one (roll back or forward)."""
        check_name(name)
        with self.db.session() as s:
            self._version_row(s, name, version)
            if self._activate(s, name, version, actor):
                self.audit.record(s, actor, "terms.activate", f"terms:{name}", {"version": version})
        self.sync()
        return {"name": name, "version": version}

    def set_enabled(self, name: str, enabled: bool, actor: str) -> dict:
        """Switch a list on or off. Switching off a bundled list stores a disabled row for it."""
        check_name(name)
        with self.db.session() as s:
            row = s.get(TermListRow, name)
            if row is None:
                if name not in BUNDLED:
                    raise _not_found(name)
                if enabled:
                    return {"name": name, "enabled": True}
                bundled = load_list(name)
                self._store_bundled(s, name, bundled, actor)
                row = s.get(TermListRow, name)
            if row.enabled != enabled:
                row.enabled, row.updated_by = enabled, actor
                self.audit.record(s, actor, "terms.enable" if enabled else "terms.disable", f"terms:{name}", {})
        self.sync()
        return {"name": name, "enabled": enabled}

    def delete(self, name: str, actor: str) -> dict:
        """Remove a stored list and all its versions; a bundled list of that name is active again."""
        check_name(name)
        with self.db.session() as s:
            row = s.get(TermListRow, name)
            if row is None:
                raise _not_found(name, stored=True)
            n = s.execute(delete(TermListVersion).where(TermListVersion.name == name)).rowcount
            s.delete(row)
            self.audit.record(s, actor, "terms.delete", f"terms:{name}", {"versions": n})
        self.sync()
        return {"name": name, "deleted": True, "versions": n, "bundled_restored": name in BUNDLED}

    # ---------------------------------------------------------------- helpers

    def _next_version(self, s: Session, name: str) -> int:
        highest = s.scalar(select(func.max(TermListVersion.version)).where(TermListVersion.name == name)) or 0
        if name in BUNDLED:
            highest = max(highest, load_list(name).version)
        return highest + 1

    def _activate(self, s: Session, name: str, version: int, actor: str) -> bool:
        row = s.get(TermListRow, name)
        if row is None:
            s.add(TermListRow(name=name, version=version, enabled=True, updated_by=actor))
            return True
        if row.version == version and row.enabled:
            return False
        row.version, row.enabled, row.updated_by = version, True, actor
        return True

    def _store_bundled(self, s: Session, name: str, bundled: TermList, actor: str) -> None:
        text = bundled.to_csv()
        sha = hashlib.sha256(text.encode()).hexdigest()
        if _find(s, name, bundled.version) is None:
            s.add(
                TermListVersion(
                    name=name, version=bundled.version, csv=text, sha256=sha, terms=len(bundled.terms), created_by=actor
                )
            )
        s.add(TermListRow(name=name, version=bundled.version, enabled=True, updated_by=actor))
        s.flush()

    @staticmethod
    def _version_row(s: Session, name: str, version: int) -> TermListVersion:
        row = _find(s, name, version)
        if row is None:
            raise NotFound(
                "terms.version_not_found", f"Term list {name!r} has no version {version}.", detail={"name": name}
            )
        return row

    def _load(self, s: Session, name: str, version: int) -> TermList:
        row = self._version_row(s, name, version)
        known = self._parsed.get(name)
        if known is not None and known[0] == row.sha256 and known[1].version == version:
            return known[1]
        parsed = TermList.from_csv(row.csv, name=name, version=version)
        self._parsed[name] = (row.sha256, parsed)
        return parsed


def _find(s: Session, name: str, version: int) -> TermListVersion | None:
    return s.scalar(select(TermListVersion).where(TermListVersion.name == name, TermListVersion.version == version))


def _info(tl: TermList, origin: str) -> dict:
    return {"name": tl.name, "version": tl.version, "origin": origin, "terms": len(tl.terms)}


def _not_found(name: str, *, stored: bool = False) -> NotFound:
    what = "stored term list" if stored else "term list"
    return NotFound("terms.not_found", f"No {what} {name!r}.", detail={"name": name})
