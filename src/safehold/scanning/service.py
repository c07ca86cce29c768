"""Scanning: content, a hash or a URL in; every match and a verdict out.

Hashing (:mod:`safehold.signals`) and candidate search (:class:`~safehold.banks.index.BankIndex`) are separate
steps so the CLI can hash in worker processes and match in one. This module applies each bank's own settings
(threshold for the candidate's signal type, kind, dihedral, enabled) to the candidates and decides the verdict;
what differs between signal types (quality floor, query variants, match rule) is asked of the signal type, so a
plug-in type is scanned exactly like a built-in one:

- ``allowlisted``: some allow-bank matched (a known false positive); block matches are listed but suppressed.
- ``match``: some block-bank matched.
- ``unhashable``: image or video whose perceptual hash could not be computed or is too low quality to match,
  and no exact match either.
- ``no_match``: otherwise.

Media that did not match is never stored; each scan only bumps an aggregate counter, and each matched entry its
match counter (:class:`~safehold.banks.matchstats.MatchCounts`, read by the false-positive controls).

Who sees what of a match: a caller whose role may read banks (``banks.read``: staff) gets the whole entry, its
provenance included (source list, external id, note, metadata such as the banked file's name, who added it). Any
other caller (the ``platform`` role) gets what it needs to act — bank, kind, signal type, distance, variant and the
entry's id and category — and never where the hash came from: that is the hash lists' and the operator's business,
and a note or file name may say more than a platform should know. See :func:`sees_provenance`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from sqlalchemy import Row, bindparam, select

from safehold.auth.roles import Permission, allows
from safehold.banks.index import BankIndex, BankSettings, Candidate
from safehold.banks.matchstats import MatchCounts
from safehold.banks.service import entry_to_dict
from safehold.config import Settings
from safehold.errors import SafeholdError
from safehold.scanning import frames as frames_mod
from safehold.scanning.fetch import Fetched, UrlGuard, fetch
from safehold.scanning.frames import FrameScan
from safehold.scanning.limits import FetchSlots
from safehold.signals import registry
from safehold.signals.base import Signal, SignalType
from safehold.signals.budget import WorkBudget
from safehold.signals.isolation import Isolation
from safehold.signals.keyframes import KeyframeSampler
from safehold.signals.url import url_lookup_hashes
from safehold.store.counters import DailyCounts
from safehold.store.db import Database
from safehold.store.models import BankEntry, ScanCount

VERDICTS = ("match", "no_match", "allowlisted", "unhashable")
#: The fields of a matched entry every caller sees; the rest (provenance) needs ``banks.read``.
ENTRY_FIELDS_TO_ACT = ("id", "category")


def sees_provenance(role: str) -> bool:
    """Whether a caller of ``role`` sees a matched entry's provenance: decided by permission, not by role name."""
    return allows(role, Permission.BANKS_READ)


@dataclass
class Match:
    bank: str
    bank_kind: str
    signal_type: str
    distance: int
    variant: str
    entry: dict
    detail: dict | None = None

    @property
    def entry_id(self) -> int:
        return self.entry["id"]

    def to_dict(self, *, provenance: bool = False) -> dict:
        out = asdict(self)
        if not provenance:
            out["entry"] = {k: self.entry.get(k) for k in ENTRY_FIELDS_TO_ACT}
        return out


@dataclass(frozen=True)
class IndexedMatch:
    """A match known from the index alone (:meth:`ScanService.scan_hash_indexed`): its bank and entry id, none of
    the entry's fields."""

    bank: str
    bank_kind: str
    entry_id: int
    distance: int


@dataclass
class ScanResult:
    verdict: str
    media: str | None
    signals: list[dict] = field(default_factory=list)
    matches: list[Match] = field(default_factory=list)
    error: dict | None = None
    warnings: list[str] = field(default_factory=list)
    name: str | None = None
    #: What a fetched URL served (never in the answer): a URL scan naming a subject hands it to the pipeline, so
    #: the content is kept and classified as the same file uploaded would be.
    fetched: bytes | None = field(default=None, repr=False)
    #: The video frames that matched an image bank, as PNG (never in the answer), by the ``frame`` number in their
    #: matches' detail: the pipeline keeps them, encrypted, for the reviewer (:mod:`safehold.scanning.frames`).
    frames: list[bytes] = field(default_factory=list, repr=False)

    def to_dict(self, *, provenance: bool = False) -> dict:
        """The answer to a caller; without ``provenance`` matched entries show only :data:`ENTRY_FIELDS_TO_ACT`."""
        out = asdict(self)
        out.pop("fetched")
        out.pop("frames")
        out["matches"] = [m.to_dict(provenance=provenance) for m in self.matches]
        if self.name is None:
            out.pop("name")
        return out


def hash_options(settings: Settings, *, dihedral: bool, pdq_mode: str | None = None) -> dict:
    """The keyword arguments of :func:`~safehold.signals.registry.hash_content` for every door (the API and the
    CLI hash with the same caps: upload size, pixels, JPEG scans and segments, video length, decode timeouts).
    Plain, picklable data (:class:`Isolation` is its two numbers), so the CLI's worker processes get them as they
    are; the process-wide bounds on work in flight (pixel budget, video slots) are the caller's to add
    (:meth:`ScanService.hash_bytes`)."""
    return {
        "pdq_mode": pdq_mode or settings.pdq_mode,
        "dihedral": dihedral,
        "max_bytes": settings.max_upload_bytes,
        "pdq_options": {
            "max_pixels": settings.max_image_pixels,
            "max_jpeg_scans": settings.jpeg_max_scans,
            "max_jpeg_segments": settings.jpeg_max_segments,
            "isolation": Isolation(settings.image_isolate_pixels, settings.image_decode_timeout),
        },
        "vpdq_options": {
            "max_duration_seconds": settings.video_max_seconds,
            "max_pixels": settings.video_max_pixels,
            "timeout_seconds": settings.video_hash_timeout,
            "max_bytes": settings.max_upload_bytes,
        },
    }


def _type_of(name: str) -> type[SignalType] | None:
    """The installed signal type ``name``, or ``None`` (a hasher's undeclared type, a plug-in since removed)."""
    try:
        return registry.signal_type(name)
    except SafeholdError:
        return None


def _entries_statement():
    """What :meth:`ScanService._entries` reads of matched entries: the columns :func:`entry_to_dict` and
    :func:`_bank_match` use, from the table itself (the ORM's annotated columns cost each result's set-up more)."""
    t = BankEntry.__table__
    names = ("id", "bank_id", "signal_type", "value", "source", "external_id", "category", "note", "enabled")
    names += ("added_by", "added_at", "quarantined_at", "quarantine_reason")
    columns = [t.c[name] for name in names]
    return select(*columns, t.c.metadata.label("extra")).where(t.c.id.in_(bindparam("ids", expanding=True)))


_ENTRIES = _entries_statement()


def _signal(signal_type: str, value: str) -> Signal:
    """The signal of a hash sent as it is: ``signal_type`` may be an alias (``photodna``), the signal carries the
    type's own name, under which banks index their entries; the value normalised, or refused by the type."""
    st = registry.signal_type(signal_type)
    return Signal(st.name, st.normalize(value))


def _best(candidates: list[Candidate]) -> dict[int, Candidate]:
    """Each entry's closest candidate (at the same distance, the original before a rotation or flip)."""
    best: dict[int, Candidate] = {}
    for c in candidates:
        prev = best.get(c.entry_id)
        if prev is None or (c.distance, c.variant != "original") < (prev.distance, prev.variant != "original"):
            best[c.entry_id] = c
    return best


def _bank_admits(bank: BankSettings | None, c: Candidate) -> bool:
    """Whether ``bank`` is enabled, takes ``c``'s variant (a rotated or flipped hit counts only on a dihedral
    bank) and its signal type calls ``c``'s distance a match at the bank's threshold."""
    if bank is None or not bank.enabled or (c.variant != "original" and not bank.dihedral):
        return False
    st = _type_of(c.signal_type)
    return st is not None and st.is_match(c.distance, bank.threshold(c.signal_type), c.extra)


def _bank_match(bank, e: BankEntry | Row, c: Candidate, *, variant: str, detail: dict | None = None) -> Match | None:
    """``c`` as a match of entry ``e`` of ``bank``: the entry enabled and the bank admitting ``c``
    (:func:`_bank_admits`); else ``None``. ``detail`` replaces the type's own (a video frame's)."""
    if not e.enabled or not _bank_admits(bank, c):
        return None
    st = _type_of(c.signal_type)
    threshold = bank.threshold(c.signal_type)
    return Match(
        bank=bank.name,
        bank_kind=bank.kind,
        signal_type=c.signal_type,
        distance=c.distance,
        variant=variant,
        entry=entry_to_dict(e, bank.name),
        detail=st.bank_detail(threshold, c.extra) if detail is None else detail,
    )


def signal_dict(sig: Signal) -> dict:
    out = {"type": sig.type, "value": sig.value}
    if sig.quality is not None:
        out["quality"] = sig.quality
    return out


class ScanService:
    def __init__(self, db: Database, index: BankIndex, settings: Settings):
        self.db = db
        self.index = index
        self.settings = settings
        self.guard = UrlGuard(settings.url_fetch_allow)
        self._counts = DailyCounts(db, ScanCount, ("channel", "media", "verdict"))
        self.entry_matches = MatchCounts(db)
        # Process-wide bounds on work in flight (docs/security.md, "Media and URL limits").
        wait = settings.media_busy_wait_seconds
        self.pixels = WorkBudget(settings.max_pixels_in_flight, wait=wait, what="decoding images")
        self.videos = WorkBudget(settings.video_max_concurrent, wait=wait, what="hashing videos")
        self.isolation = Isolation(settings.image_isolate_pixels, settings.image_decode_timeout)
        self.fetches = FetchSlots(settings.url_fetch_max_concurrent, settings.url_fetch_max_per_key)

    # ------------------------------------------------------------- entry points

    def hash_bytes(self, data: bytes, filename: str | None = None) -> registry.HashResult:
        options = hash_options(self.settings, dihedral=self.index.any_dihedral)
        options["pdq_options"].update(budget=self.pixels, isolation=self.isolation)  # its fork server, started early
        options["vpdq_options"]["slots"] = self.videos
        return registry.hash_content(data, filename=filename, **options)

    def scan_bytes(self, data: bytes, *, filename: str | None = None, channel: str = "api") -> ScanResult:
        return self.evaluate(self.hash_bytes(data, filename), channel=channel, name=filename, data=data)

    def scan_hash(self, signal_type: str, value: str, *, channel: str = "api") -> ScanResult:
        """Match one hash; ``signal_type`` may be an alias (``photodna``), the signal carries the type's own
        name, under which banks index their entries."""
        result = self.lookup_hash(signal_type, value)
        self.count(channel, "hash", result.verdict)
        return result

    def scan_hash_indexed(
        self, signal_type: str, value: str, *, channel: str = "api"
    ) -> tuple[str, list[IndexedMatch]]:
        """:meth:`scan_hash` answered from the index alone: the verdict and the matches as bank, entry id and
        distance, without the entries' fields — all a caller that only needs to know *which* entries matched
        (HMA's lookup) asks.

        It needs neither the database nor a thread, hit or miss: the index probe (no lock, a fraction of a
        millisecond at millions of hashes) and the index's own record of each entry's bank are all of it, so an
        event loop may call it. Reading a hit's entries from the database, and the hop to a thread to do so,
        cost a lookup several times the probe. The entries are as of the index's last sync with the change log
        (every ``index_sync_interval``, 0.5 s by default; ``/readyz`` reports its freshness), as bank settings
        already are on every path: an entry disabled a moment ago can still match for that long, as one added a
        moment ago does not match yet."""
        _, candidates = self._candidates([_signal(signal_type, value)], [])
        banks, entries = self.index.banks, self.index.entries
        out: list[IndexedMatch] = []
        for c in _best(candidates).values():
            bank = banks.get(entries.bank(c.entry_id))
            if not _bank_admits(bank, c):
                continue
            out.append(IndexedMatch(bank.name, bank.kind, c.entry_id, c.distance))
        out.sort(key=lambda m: (m.bank_kind != "allow", m.distance, m.bank, m.entry_id))
        verdict = "allowlisted" if any(m.bank_kind == "allow" for m in out) else "match" if out else "no_match"
        self.entry_matches.add(m.entry_id for m in out)
        self.count(channel, "hash", verdict)
        return verdict, out

    def lookup_hash(self, signal_type: str, value: str) -> ScanResult:
        """What a scan of one hash finds against the banks as they are now, not counted as a scan: re-matching
        (:mod:`safehold.sharing.rematch`) asks it of a stored hash that a new entry may match, so the banks'
        own settings (enabled, threshold, allow banks) decide, as they would for a scan."""
        return self._decide(None, [_signal(signal_type, value)], [], [])

    def scan_url(
        self, url: str, *, fetch_content: bool = True, channel: str = "api", caller: str | None = None
    ) -> ScanResult:
        """Match the URL itself against URL banks and, unless told not to, fetch it (guarded) and scan
        what it serves. ``caller`` (an API key or user label) is who the per-caller fetch cap counts against;
        a fetch beyond the caps is refused at once (429 ``url.too_many_fetches`` / 503 ``url.busy``)."""
        url_signals = [Signal("url", h) for h in url_lookup_hashes(url)]
        if not fetch_content:
            result = self._decide(None, url_signals, [], [])
            result.name = url
            self.count(channel, "url", result.verdict)
            return result
        fetched = self.fetch_url(url, caller=caller)
        hashed = self.hash_bytes(fetched.data, filename=fetched.url)
        frames = self.video_frames(fetched.data, hashed)
        result = self._decide(hashed.media, url_signals + list(hashed.signals), hashed.errors, [], frames)
        result.name, result.fetched = fetched.url, fetched.data
        self.count(channel, hashed.media, result.verdict)
        return result

    def fetch_url(self, url: str, *, caller: str | None = None) -> Fetched:
        """Fetch ``url`` as a scan does: SSRF-guarded, within the fetch caps (per caller and in all), the size
        limit of an upload and the fetch deadline. For doors that hash or bank what a URL serves."""
        with self.fetches.hold(caller):
            return fetch(
                url,
                guard=self.guard,
                max_bytes=self.settings.max_upload_bytes,
                timeout=self.settings.url_fetch_timeout,
                max_redirects=self.settings.url_fetch_max_redirects,
                deadline=self.settings.url_fetch_deadline,
            )

    def evaluate(
        self, hashed: registry.HashResult, *, channel: str = "api", name: str | None = None, data: bytes | None = None
    ) -> ScanResult:
        """The verdict on hashed content; with the content's ``data``, a video's keyframes and scene changes are
        matched against image banks too (:meth:`video_frames`)."""
        frames = self.video_frames(data, hashed) if data is not None else None
        result = self._decide(hashed.media, list(hashed.signals), hashed.errors, [], frames)
        result.name = name
        self.count(channel, hashed.media, result.verdict)
        return result

    def video_frames(self, data: bytes, hashed: registry.HashResult) -> FrameScan | None:
        """A video's keyframes and scene changes matched against the image banks' PDQ index, when
        ``video_frame_match`` is on, the content is a video whose hash raised no error and some bank holds PDQ
        hashes; ``None`` otherwise. Refused frames (``media.*``) are an error of the result, not of the scan."""
        if not self.settings.video_frame_match or hashed.media != "video" or hashed.errors:
            return None
        if not frames_mod.has_image_hashes(self.index):
            return None
        s = self.settings
        sampler = KeyframeSampler(
            scene_threshold=s.video_scene_threshold,
            max_per_minute=s.video_frames_per_minute,
            max_duration_seconds=s.video_max_seconds,
            max_pixels=s.video_max_pixels,
            timeout_seconds=s.video_hash_timeout,
            max_bytes=s.max_upload_bytes,
            slots=self.videos,
        )
        return frames_mod.scan_frames(sampler.frames(data), self.index, keep=s.video_frames_kept)

    # ------------------------------------------------------------------ logic

    def _decide(
        self,
        media: str | None,
        signals: list[Signal],
        errors: list[SafeholdError],
        warnings: list[str],
        frames: FrameScan | None = None,
    ) -> ScanResult:
        """The verdict on ``signals`` (and a video's ``frames``)."""
        usable, candidates = self._candidates(signals, warnings)
        matches = self._resolve(candidates)
        kept: list[bytes] = []
        if frames is not None:
            frame_matches, kept = self._resolve_frames(frames)
            matches.extend(frame_matches)
            if frames.error is not None:
                errors = [*errors, frames.error]
        if any(m.bank_kind == "allow" for m in matches):
            verdict = "allowlisted"
        elif matches:
            verdict = "match"
        elif (perceptual := registry.perceptual_types(media)) and not any(s.type in perceptual for s in usable):
            verdict = "unhashable"
        else:
            verdict = "no_match"
        error = errors[0].to_dict() if errors else None
        return ScanResult(
            verdict=verdict,
            media=media,
            signals=[signal_dict(s) for s in signals if s.type != "url"],
            matches=matches,
            error=error,
            warnings=sorted(set(warnings)),
            frames=kept,
        )

    def _candidates(self, signals: list[Signal], warnings: list[str]) -> tuple[list[Signal], list[Candidate]]:
        """The signals a type can match (the others' reasons added to ``warnings``) and the index's candidates for
        them. No database, no lock."""
        usable: list[Signal] = []
        candidates: list[Candidate] = []
        for sig in signals:
            st = _type_of(sig.type)
            if st is None:
                continue
            warning = st.unusable(sig)
            if warning:
                warnings.append(warning)
                continue
            usable.append(sig)
            candidates.extend(self.index.lookup(sig.type, sig.value, variants=st.query_variants(sig)))
        return usable, candidates

    def _resolve(self, candidates: list[Candidate]) -> list[Match]:
        """Turn index candidates into matches: the entry must still be enabled, its bank enabled, the signal
        type must call it a match at the bank's threshold for that type, and a variant's hit (rotated/flipped)
        only counts for dihedral banks."""
        if not candidates:
            return []
        banks = self.index.banks
        best = _best(candidates)
        out: list[Match] = []
        for e in self._entries(best).values():
            bank = banks.get(e.bank_id)
            c = best[e.id]
            m = _bank_match(bank, e, c, variant=c.variant)
            if m is not None:
                out.append(m)
        out.sort(key=lambda m: (m.bank_kind != "allow", m.distance, m.bank, m.entry["id"]))
        self.entry_matches.add(m.entry["id"] for m in out)
        return out

    def _entries(self, ids: Iterable[int]) -> dict[int, Row]:
        """The entries ``ids`` by id, as plain rows of the columns a match reports (:func:`entry_to_dict`): on
        the lookup hot path a hit reads them, and loading ORM objects into a session of their own (identity map,
        begin, commit) cost it more CPU than the lookup and the read together."""
        with self.db.engine.connect() as conn:
            rows = conn.execute(_ENTRIES, {"ids": list(ids)})
            return {r.id: r for r in rows}

    def _resolve_frames(self, scan: FrameScan) -> tuple[list[Match], list[bytes]]:
        """The frames' candidates that match on an enabled **block** bank (an allow bank vouches for a file, not
        for every video that shows a frame of it), one match per matching frame and entry, with the frame's
        timestamp, and the PNGs of the frames kept, renumbered in order."""
        if not scan.hits:
            return [], []
        banks = self.index.banks
        ids = {c.entry_id for hit in scan.hits for c in hit.candidates}
        out: list[Match] = []
        kept: list[bytes] = []
        renumber: dict[int, int] = {}
        entries = self._entries(ids)
        for hit in scan.hits:
            for c in sorted(hit.candidates, key=lambda c: (c.distance, c.entry_id)):
                e = entries.get(c.entry_id)
                bank = banks.get(e.bank_id) if e is not None else None
                if bank is None or bank.kind != "block":
                    continue
                detail = {"timestamp": hit.timestamp, "frame_pdq": hit.pdq, "frame_quality": hit.quality}
                m = _bank_match(bank, e, c, variant="frame", detail=detail)
                if m is None:
                    continue
                if hit.png is not None:
                    if hit.number not in renumber:
                        renumber[hit.number] = len(kept)
                        kept.append(hit.png)
                    detail["frame"] = renumber[hit.number]
                out.append(m)
        self.entry_matches.add(dict.fromkeys(m.entry["id"] for m in out))
        return out, kept

    # --------------------------------------------------------------- counters

    def count(self, channel: str, media: str | None, verdict: str, n: int = 1) -> None:
        self._counts.add((channel, media or "hash", verdict), n)

    def flush_counts(self) -> None:
        """Add the buffered counters to ``scan_counts`` (one upsert per key) and the entries' match counts to
        ``entry_match_counts`` (one upsert per entry and hour)."""
        try:
            self._counts.flush()
        finally:
            self.entry_matches.flush()

    def stats(self, days: int = 30) -> list[dict]:
        return self._counts.recent(days)
