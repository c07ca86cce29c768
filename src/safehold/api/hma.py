"""HMA's API, spoken by Safehold: the translation between Meta's Hasher-Matcher-Actioner (HMA 2.0,
OpenMediaMatch) and Safehold's own services, so a platform integrated with HMA switches by changing a URL.

The routes (:mod:`safehold.api.routes.hma`) parse HMA's parameters and call this module; this module calls
Safehold's services (``svc.scans``, ``svc.banks``) and shapes their answers as HMA does. It decides nothing a
Safehold service does not already decide: a lookup is a Safehold scan (bank thresholds, enabled flags, allow
banks), a banked file is a Safehold bank file (reference PDQ, quality floor), every refusal a Safehold error.

What maps to what (docs/sharing.md, "Switching from HMA"):

- An HMA bank is a Safehold bank of the same name; ``matching_enabled_ratio`` is 1.0 for an enabled bank and 0.0
  for a disabled one (Safehold has no partial ratios: ``hma.unsupported_ratio``).
- An HMA bank content id is a Safehold bank entry id. Safehold keeps one entry per signal, so a file that gives
  two signals (a video: ``video_md5`` and ``vpdq``) becomes two entries; the content id answered is the first's.
- HMA's signal type ``video_md5`` is Safehold's ``md5`` of a video; every other name is Safehold's own
  (``pdq``, ``vpdq``, and any installed type such as ``md5`` or a plug-in's).
- HMA's content types ``photo`` and ``video`` are Safehold's media ``image`` and ``video``; a file is hashed
  with HMA's signal types for its media (``photo``: ``pdq``; ``video``: ``video_md5``, ``vpdq``).

HMA's errors are ``{"message": "..."}``; Safehold's ``{"error": {"code", "message"}}``. The HMA routes answer
both in one body (:func:`error_body`), so an HMA client reads ``message`` and a Safehold client switches on the code.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TypeVar

from safehold.auth.apikeys import Principal
from safehold.banks.service import BankInfo
from safehold.errors import NotFound, SafeholdError
from safehold.scanning.service import IndexedMatch, Match
from safehold.services import Services
from safehold.signals import registry

#: The paths HMA's API lives under (matching, hashing, curation), at the server's root as in HMA.
PREFIXES = ("/m/", "/h/", "/c/")
#: A match of either kind: a scan's (:class:`Match`) or the index's alone (:class:`IndexedMatch`).
M = TypeVar("M", Match, IndexedMatch)
#: HMA's content types → Safehold's media, and the HMA signal types hashed for each.
CONTENT_TYPES = {"photo": "image", "video": "video"}
HMA_TYPES = {"image": ("pdq",), "video": ("video_md5", "vpdq")}
#: HMA signal type names that are not Safehold's own.
TO_SAFEHOLD = {"video_md5": "md5"}
#: HMA's bank content ``disable_until_ts`` magic values.
ENABLED_TS, DISABLED_TS = 1, 0


def is_hma_path(path: str) -> bool:
    return path.startswith(PREFIXES)


def error_body(code: str, message: str, detail: dict | None = None) -> dict:
    """An error as HMA (``message``) and Safehold (``error.code``) clients both read it."""
    error: dict = {"code": code, "message": message}
    if detail:
        error["detail"] = detail
    return {"message": message, "error": error}


# ------------------------------------------------------------------ names


def safehold_type(hma_name: str) -> str:
    """The Safehold signal type an HMA signal type name stands for (``signal.unknown_type`` if none)."""
    return registry.signal_type(TO_SAFEHOLD.get(hma_name, hma_name)).name


def hma_type(safehold_name: str, media: str | None) -> str:
    """The name HMA gives a Safehold signal type: ``video_md5`` for a video's MD5, else the same name."""
    return "video_md5" if safehold_name == "md5" and media == "video" else safehold_name


def _media_types(media: str | None, only: str | None) -> list[str]:
    """The Safehold types HMA hashes ``media`` with, narrowed to HMA's ``types=`` (comma-separated) if given."""
    if media not in HMA_TYPES:
        raise SafeholdError(
            "media.unsupported_format",
            f"HMA hashes photos and videos; this content is {media or 'of no known kind'}.",
        )
    wanted = [t for t in HMA_TYPES[media] if _installed(t)]
    if only is None:
        return [safehold_type(t) for t in wanted]
    names = [n.strip() for n in only.split(",") if n.strip()]
    if not names:
        raise SafeholdError("hma.no_signal_types", "types= names no signal type.")
    for n in names:
        if n not in wanted:
            raise SafeholdError(
                "hma.no_signal_types",
                f"Signal type {n!r} is not one a {media} is hashed with here ({', '.join(wanted)}).",
            )
    return [safehold_type(n) for n in names]


def _installed(hma_name: str) -> bool:
    return TO_SAFEHOLD.get(hma_name, hma_name) in registry.all_signal_types()


def _check_content_type(content_type: str | None, media: str) -> None:
    """HMA's ``content_type`` hint: Safehold reads the kind from the bytes, so a hint that disagrees is refused."""
    if content_type is not None and CONTENT_TYPES[content_type] != media:
        raise SafeholdError(
            "hma.content_type_mismatch",
            f"content_type is {content_type!r} but the content is {'a photo' if media == 'image' else 'a ' + media}.",
        )


def _split(banks: str | None) -> set[str] | None:
    return {b.strip() for b in banks.split(",") if b.strip()} if banks else None


# ---------------------------------------------------------------- hashing


def _hashed(
    svc: Services, data: bytes, name: str | None, content_type: str | None, types: str | None
) -> tuple[registry.HashResult, list[str]]:
    """A file hashed by Safehold's scanning hasher, and the Safehold types HMA wants of it; a file none of whose
    wanted signals could be computed raises why (``media.invalid``, ``media.too_complex``, ...)."""
    hashed = svc.scans.hash_bytes(data, name)
    _check_content_type(content_type, hashed.media)
    wanted = _media_types(hashed.media, types)
    if hashed.errors and not any(s.type in wanted for s in hashed.signals):
        raise hashed.errors[0]
    return hashed, wanted


def hashes(svc: Services, data: bytes, *, name: str | None, content_type: str | None, types: str | None) -> dict:
    """``{hma_signal_type: hash}`` of a file, as HMA's ``/h/hash`` answers."""
    hashed, wanted = _hashed(svc, data, name, content_type, types)
    return {hma_type(s.type, hashed.media): s.value for s in hashed.signals if s.type in wanted}


def fetched(svc: Services, who: Principal, url: str) -> tuple[bytes, str]:
    """What ``url`` serves, fetched as a Safehold URL scan fetches (SSRF guard, size, deadline, fetch caps)."""
    got = svc.scans.fetch_url(url, caller=who.label)
    return got.data, got.url


# --------------------------------------------------------------- matching


def _block_matches(verdict: str, matches: list[M], banks: set[str] | None) -> list[M]:
    """The matches an HMA client acts on: block-bank matches of a ``match`` verdict (an allow bank's hit is a
    known false positive: Safehold's verdict then suppresses them, and so does this door)."""
    if verdict != "match":
        return []
    return [m for m in matches if m.bank_kind == "block" and (banks is None or m.bank in banks)]


def _match(m: Match | IndexedMatch) -> dict:
    """One match as HMA's ``MatchWithDistance``: the content (entry) id and the distance as a string."""
    return {"bank_content_id": m.entry_id, "distance": str(m.distance)}


def _by_bank(matches: Iterable[Match | IndexedMatch]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for m in matches:
        out.setdefault(m.bank, []).append(_match(m))
    return out


def _hash_matches(svc: Services, signal_type: str, signal: str, banks: str | None) -> list[IndexedMatch]:
    """What an HMA client acts on for one hash, from the index alone (no database, no thread: see
    :meth:`~safehold.scanning.service.ScanService.scan_hash_indexed`), so an event loop may ask it."""
    return _block_matches(*svc.scans.scan_hash_indexed(safehold_type(signal_type), signal), _split(banks))


def raw_lookup(svc: Services, signal_type: str, signal: str, *, banks: str | None, include_distance: bool) -> dict:
    """HMA's ``/m/raw_lookup``: ``{"matches": [content_id, ...]}`` or, with distances, ``[{bank_content_id,
    distance}]``."""
    matches = _hash_matches(svc, signal_type, signal, banks)
    if include_distance:
        return {"matches": [_match(m) for m in matches]}
    return {"matches": list(dict.fromkeys(m.entry_id for m in matches))}


def lookup_hash(svc: Services, signal_type: str, signal: str, *, banks: str | None) -> dict:
    """HMA's ``/m/lookup`` of one hash: ``{bank: [{bank_content_id, distance}]}``. Needs no database and no
    thread, so the hot path (:mod:`safehold.api.hma_hotpath`) calls it on the event loop."""
    return _by_bank(_hash_matches(svc, signal_type, signal, banks))


def lookup_content(
    svc: Services,
    data: bytes,
    *,
    name: str | None,
    banks: str | None,
    content_type: str | None = None,
    types: str | None = None,
    signal_type: str | None = None,
) -> dict:
    """HMA's ``/m/lookup`` of a file: ``{signal_type: {bank: [...]}}`` for each of its HMA signal types (and any
    other type that matched), or just ``{bank: [...]}`` of ``signal_type`` when it is given."""
    hashed, wanted = _hashed(svc, data, name, content_type, types)
    result = svc.scans.evaluate(hashed, name=name)
    matches = _block_matches(result.verdict, result.matches, _split(banks))
    out: dict[str, dict] = {hma_type(t, hashed.media): {} for t in wanted}
    for m in matches:
        out.setdefault(hma_type(m.signal_type, hashed.media), {})
    for key in out:
        out[key] = _by_bank(m for m in matches if hma_type(m.signal_type, hashed.media) == key)
    return out.get(signal_type, {}) if signal_type is not None else out


# --------------------------------------------------------------- curation


def bank_config(info: BankInfo) -> dict:
    return {"name": info.name, "matching_enabled_ratio": 1.0 if info.enabled else 0.0}


def enabled_from(enabled: bool | None, enabled_ratio: float | None) -> bool | None:
    """HMA's ``enabled`` / ``enabled_ratio`` as Safehold's enabled flag (the ratio wins, as in HMA)."""
    if enabled_ratio is not None:
        if enabled_ratio not in (0, 1):
            raise SafeholdError(
                "hma.unsupported_ratio",
                "Safehold banks are enabled (1.0) or disabled (0.0); partial matching ratios are not supported.",
                status=422,
            )
        return enabled_ratio == 1
    return enabled


def create_bank(svc: Services, who: Principal, name: str, enabled: bool) -> dict:
    return bank_config(svc.banks.create(name, enabled=enabled, created_by=who.label))


def update_bank(svc: Services, who: Principal, name: str, new_name: str | None, enabled: bool | None) -> dict:
    return bank_config(svc.banks.update(name, new_name=new_name, enabled=enabled, actor=who.label))


def delete_bank(svc: Services, who: Principal, name: str) -> dict:
    """HMA answers a deleted bank and an absent one alike."""
    try:
        svc.banks.delete(name, actor=who.label)
    except NotFound as exc:
        if exc.code != "bank.not_found":
            raise
    return {"message": "Done"}


def provenance(metadata: dict | None) -> dict:
    """HMA's content ``metadata`` (``content_id``, ``content_uri``, ``json``) as a Safehold entry's provenance:
    ``content_id`` is the entry's external id, the rest its metadata."""
    metadata = metadata or {}
    extra = {k: metadata[k] for k in ("content_uri", "json") if metadata.get(k) is not None}
    return {"external_id": metadata.get("content_id"), "metadata": extra}


def _hma_metadata(entry: dict) -> dict | None:
    out = {k: v for k, v in (entry.get("metadata") or {}).items() if k in ("content_uri", "json")}
    if entry.get("external_id"):
        out["content_id"] = entry["external_id"]
    return out or None


def _added(entries: list[dict], media: str | None) -> dict:
    """HMA's answer to a banked file: the first entry's id as the content id, and every signal banked."""
    if not entries:
        raise SafeholdError("hma.no_signal_types", "The content gave no signal of a type HMA banks.")
    return {"id": entries[0]["id"], "signals": {hma_type(e["signal_type"], media): e["value"] for e in entries}}


def add_file(
    svc: Services, who: Principal, bank: str, data: bytes, *, name: str | None, metadata: dict | None, note: str | None
) -> dict:
    """HMA's ``POST /c/bank/<bank>/content``: the file banked with its HMA signal types → ``{id, signals}``."""
    added = svc.banks.add_file(
        bank,
        data,
        filename=name,
        added_by=who.label,
        types={media: [safehold_type(t) for t in names if _installed(t)] for media, names in HMA_TYPES.items()},
        note=note,
        **provenance(metadata),
    )
    return _added(added["entries"], added["media"])


def add_signals(svc: Services, who: Principal, bank: str, signals: dict[str, str], note: str | None) -> dict:
    """HMA's ``POST /c/bank/<bank>/signal``: raw hashes, ``{signal_type: value}``; every one is checked before
    any is added."""
    if not signals:
        raise SafeholdError("hma.no_signal_types", "Give at least one {signal_type: hash}.")
    svc.banks.get(bank)
    checked = {k: (safehold_type(k), registry.normalize(safehold_type(k), v)) for k, v in signals.items()}
    entries = {k: svc.banks.add_hash(bank, t, v, note=note, added_by=who.label) for k, (t, v) in checked.items()}
    first = next(iter(entries.values()))
    return {"id": first["id"], "signals": {k: e["value"] for k, e in entries.items()}}


def _entry_in(svc: Services, bank: str, content_id: int) -> dict:
    svc.banks.get(bank)
    entry = svc.banks.get_entry(content_id)
    if entry["bank"] != bank:
        raise NotFound("entry.not_found", f"Bank {bank!r} has no content {content_id}.")
    return entry


def content(entry: dict, bank: BankInfo, *, include_signals: bool, include_metadata: bool) -> dict:
    """A bank entry as HMA's bank content; ``signals``, ``metadata`` and ``note`` only when there are some."""
    out: dict = {
        "id": entry["id"],
        "disable_until_ts": ENABLED_TS if entry["enabled"] else DISABLED_TS,
        "original_media_uri": None,
        "bank": bank_config(bank),
    }
    if include_signals:
        out["signals"] = {hma_type(entry["signal_type"], None): entry["value"]}
    meta = _hma_metadata(entry) if include_metadata else None
    if meta:
        out["metadata"] = meta
    if entry.get("note"):
        out["note"] = entry["note"]
    return out


def get_content(svc: Services, bank: str, content_id: int, *, include_signals: bool, include_metadata: bool) -> dict:
    entry = _entry_in(svc, bank, content_id)
    return content(entry, svc.banks.get(bank), include_signals=include_signals, include_metadata=include_metadata)


def update_content(
    svc: Services, who: Principal, bank: str, content_id: int, *, disable_until_ts: int | None, note: str | None
) -> dict:
    """HMA's content update: ``disable_until_ts`` 1 enables, 0 disables (the route takes no other value: a
    Safehold entry is enabled or not, never re-enabled on a timer), ``note`` sets the note."""
    _entry_in(svc, bank, content_id)
    if disable_until_ts is not None:
        svc.banks.set_entry_enabled(content_id, disable_until_ts == ENABLED_TS, actor=who.label)
    if note is not None:
        svc.banks.update_entry(content_id, note=note, actor=who.label)
    return get_content(svc, bank, content_id, include_signals=False, include_metadata=True)


def delete_content(svc: Services, who: Principal, bank: str, content_id: int) -> dict:
    """HMA answers how many contents went: 1, or 0 for one that was not in the bank."""
    try:
        _entry_in(svc, bank, content_id)
    except NotFound as exc:
        if exc.code != "entry.not_found":
            raise
        return {"deleted": 0}
    svc.banks.delete_entry(content_id, actor=who.label)
    return {"deleted": 1}


def metadata_field(raw: str | None) -> dict | None:
    """HMA's multipart ``metadata`` form field: a JSON object."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise SafeholdError("hma.invalid_metadata", "The metadata form field must be a JSON object.")
    return value
