"""NCMEC hash-sharing API v2 entry XML (``<queryResult>`` with ``<images>``/``<videos>``).

Structure as returned by ``GET /v2/entries`` of NCMEC's hash-sharing API (documentation:
https://report.cybertip.org/hashsharing/v2/documentation.pdf), as parsed by Meta's python-threatexchange
(``threatexchange/exchanges/clients/ncmec/hash_api.py`` and its test fixtures ``tests/data.py``)::

    <queryResult xmlns="https://hashsharing.ncmec.org/hashsharing/v2">
      <images count="2" maxTimestamp="2017-10-24T15:10:00Z">
        <image>
          <member id="42">Example Member</member>
          <timestamp>2017-10-24T15:00:00Z</timestamp>
          <id>image1</id>
          <classification>A1</classification>
          <fingerprints><md5>…</md5><sha1>…</sha1><pdna>…</pdna><pdq>…</pdq></fingerprints>
          <feedback>…affirmativeFeedback / negativeFeedback per fingerprint type…</feedback>
        </image>
        <deletedImage><member id="43">…</member><id>image4</id><timestamp>…</timestamp></deletedImage>
      </images>
      <videos …><video>…</video><deletedVideo>…</deletedVideo></videos>
      <paging><next>/v2/entries?…</next></paging>
    </queryResult>

Parsing is streaming (lxml ``iterparse``, each entry freed after use) and hardened: any DOCTYPE is refused
(so no internal or external entities, no billion laughs), entities are never resolved, DTDs never loaded, no
network, ``huge_tree`` off, element depth capped.

Fields Safehold needs that NCMEC's format has no place for (source, note, a category slug, ``enabled`` on a
live entry, extra metadata) are written as attributes in the namespace ``urn:safehold:bank-export:1``
(prefix ``sh``), so a Safehold export re-imports exactly; other readers ignore them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from lxml import etree

from safehold.errors import SafeholdError

from ._common import (
    INDUSTRY_CATEGORIES,
    TOMBSTONE_SIGNAL_TYPE,
    Codes,
    Collector,
    EntryRecord,
    Normalizer,
    apply_normalize,
    normalize_category,
    parse_metadata,
    short,
    valid_signal_type_name,
)

NCMEC_NS = "https://hashsharing.ncmec.org/hashsharing/v2"
SH_NS = "urn:safehold:bank-export:1"
DEFAULT_SOURCE = "ncmec"
#: Deepest element nesting accepted (the real format needs 7:
#: queryResult/images/image/feedback/…/members/member).
MAX_DEPTH = 16
#: Entries per ``<images>``/``<videos>`` block the writer emits (NCMEC pages hold 1000).
ENTRIES_PER_BLOCK = 1000

#: NCMEC fingerprint element → Safehold signal type. Other elements map to their lower-cased name with ``-``
#: → ``_``.
FINGERPRINT_TO_SIGNAL = {
    "md5": "md5",
    "sha1": "sha1",
    "pdq": "pdq",
    "pdna": "photodna",
    "tmk-pdqf": "tmk_pdqf",
    "videntifier": "videntifier",
}
SIGNAL_TO_FINGERPRINT = {v: k for k, v in FINGERPRINT_TO_SIGNAL.items()}

_ENTRY_TAGS = {
    "image": ("image", False),
    "video": ("video", False),
    "deletedImage": ("image", True),
    "deletedVideo": ("video", True),
}
_CONTAINERS = {"images": "image", "videos": "video"}
_ENTRY_KEYS = ("media", "member_id", "member_name", "timestamp", "deleted", "ncmec_classification")


def _local(tag) -> str:
    if not isinstance(tag, str):
        return ""
    return tag.rpartition("}")[2]


def _sh(name: str) -> str:
    return f"{{{SH_NS}}}{name}"


def _text(el) -> str | None:
    if el is None or el.text is None:
        return None
    t = el.text.strip()
    return t or None


# ----------------------------------------------------------------------------------------------------------
# Reading


def read_ncmec_xml(bstream, *, normalize: Normalizer, source: str | None, col: Collector) -> Iterator[EntryRecord]:
    default_source = source or DEFAULT_SOURCE
    ctx = etree.iterparse(
        bstream,
        events=("start", "end"),
        resolve_entities=False,
        load_dtd=False,
        dtd_validation=False,
        no_network=True,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        recover=False,
    )
    depth = 0
    container: str | None = None
    try:
        for event, el in ctx:
            if event == "start":
                depth += 1
                if depth > MAX_DEPTH:
                    col.issue(
                        el.sourceline,
                        Codes.XML_FORBIDDEN,
                        f"XML nested deeper than {MAX_DEPTH} elements; import stopped",
                        skipped=False,
                        fatal=True,
                    )
                    return
                if depth == 1:
                    info = el.getroottree().docinfo
                    if info.doctype or info.internalDTD is not None or info.externalDTD is not None:
                        col.issue(
                            1,
                            Codes.XML_FORBIDDEN,
                            "XML with a DOCTYPE (DTD or entity declarations) is refused",
                            skipped=False,
                            fatal=True,
                        )
                        return
                    if _local(el.tag) != "queryResult":
                        col.issue(
                            el.sourceline,
                            Codes.XML_INVALID,
                            f"root element is <{_local(el.tag)}>, expected NCMEC <queryResult>",
                            skipped=False,
                            fatal=True,
                        )
                        return
                elif depth == 2:
                    container = _CONTAINERS.get(_local(el.tag))
                continue
            # end event
            depth -= 1
            if depth == 2:
                tag = _local(el.tag)
                if container is None:
                    pass  # inside <paging> or an unknown block (already reported)
                elif tag in _ENTRY_TAGS and _ENTRY_TAGS[tag][0] == container:
                    yield from _entry_records(el, tag, normalize, default_source, col)
                else:
                    col.issue(
                        el.sourceline,
                        Codes.XML_UNEXPECTED,
                        f"unexpected element <{tag}> ignored",
                        skipped=False,
                    )
                _free(el)
            elif depth == 1:
                tag = _local(el.tag)
                if tag not in _CONTAINERS and tag != "paging":
                    col.issue(
                        el.sourceline,
                        Codes.XML_UNEXPECTED,
                        f"unexpected element <{tag}> ignored",
                        skipped=False,
                    )
                container = None
                _free(el)
    except etree.XMLSyntaxError as e:
        msg = str(e)
        code = Codes.ENCODING if "encoding" in msg.lower() or "utf-8" in msg.lower() else Codes.XML_INVALID
        if "entity" in msg.lower() and ("amplification" in msg.lower() or "loop" in msg.lower()):
            code = Codes.XML_FORBIDDEN
        elif "excessive depth" in msg.lower():  # libxml2's own nesting cap, met before MAX_DEPTH in a parsed chunk
            code = Codes.XML_FORBIDDEN
        col.issue(
            getattr(e, "lineno", None) or None,
            code,
            f"malformed XML: {msg}; import stopped",
            skipped=False,
            fatal=True,
        )
    except (etree.LxmlError, ValueError) as e:
        col.issue(None, Codes.XML_INVALID, f"unreadable XML: {e}; import stopped", skipped=False, fatal=True)


def _free(el) -> None:
    el.clear(keep_tail=False)
    parent = el.getparent()
    if parent is not None:
        while el.getprevious() is not None:
            del parent[0]


def _children(el):
    for c in el:
        if isinstance(c, etree._Entity):
            raise _Forbidden()
        if isinstance(c.tag, str):
            yield c


class _Forbidden(Exception):
    pass


def _entry_records(el, tag, normalize, default_source, col) -> Iterator[EntryRecord]:
    media, deleted = _ENTRY_TAGS[tag]
    line = el.sourceline
    try:
        parts: dict = {}
        for c in _children(el):
            name = _local(c.tag)
            parts.setdefault(name, c)
        fingerprints = list(_children(parts["fingerprints"])) if "fingerprints" in parts else []
        feedback = _read_feedback(parts.get("feedback"))
    except _Forbidden:
        col.issue(line, Codes.XML_FORBIDDEN, "entity reference in entry refused")
        return

    meta: dict = {}
    if el.get(_sh("implicitMedia")) != "true":
        meta["media"] = media
    member = parts.get("member")
    if member is not None:
        if member.get("id"):
            meta["member_id"] = member.get("id")
        if _text(member):
            meta["member_name"] = _text(member)
    if _text(parts.get("timestamp")):
        meta["timestamp"] = _text(parts.get("timestamp"))
    if deleted and el.get(_sh("deletedFlag")) != "false":
        meta["deleted"] = True
    external_id = _text(parts.get("id"))

    category = None
    classification = _text(parts.get("classification"))
    if classification:
        if classification.upper() in INDUSTRY_CATEGORIES:
            category = classification.upper()
        else:
            meta["ncmec_classification"] = classification
    sh_category = el.get(_sh("category"))
    if sh_category is not None:
        try:
            category = normalize_category(sh_category)
        except SafeholdError as e:
            col.counts.rows += max(1, len(fingerprints))
            for _ in range(max(1, len(fingerprints))):
                col.issue(line, Codes.INVALID_CATEGORY, e.message)
            return

    def build(holder, signal_type: str, value: str, extra_meta: dict, rec_line) -> EntryRecord | None:
        m = dict(meta)
        m.update(extra_meta)
        raw = holder.get(_sh("meta"))
        if raw is not None:
            extra = parse_metadata(raw, rec_line, col, "sh:meta")
            if extra is None:
                return None
            m.update(extra)
        src = holder.get(_sh("source"))
        enabled_attr = holder.get(_sh("enabled"))
        enabled = (not deleted) if enabled_attr is None else enabled_attr == "true"
        return EntryRecord(
            signal_type=signal_type,
            value=value,
            source=default_source if src is None else (src or None),
            external_id=external_id,
            category=category,
            note=holder.get(_sh("note")),
            metadata=m,
            enabled=enabled,
        )

    if not fingerprints:
        col.counts.rows += 1
        if not deleted:
            col.issue(line, Codes.NO_FINGERPRINTS, f"<{tag}> {short(external_id or '?')} has no fingerprints")
            return
        rec = build(el, TOMBSTONE_SIGNAL_TYPE, "", {}, line)
        if rec is None:
            return
        if not rec.external_id:
            col.issue(line, Codes.INVALID_TOMBSTONE, f"<{tag}> without an <id> cannot be applied")
            return
        col.counts.records += 1
        yield rec
        return

    for fp in fingerprints:
        col.counts.rows += 1
        fp_line = fp.sourceline
        fp_tag = _local(fp.tag).lower()
        signal_type = FINGERPRINT_TO_SIGNAL.get(fp_tag, fp_tag.replace("-", "_"))
        value = _text(fp)
        if value is None:
            if fp.get("href"):
                col.issue(
                    fp_line,
                    Codes.FINGERPRINT_NOT_INLINE,
                    f"<{fp_tag}> of {short(external_id or '?')} is only a link ({fp.get('href')}); "
                    "fetch it from the API to import it",
                )
            else:
                col.issue(fp_line, Codes.INVALID_VALUE, f"empty <{fp_tag}> fingerprint")
            continue
        norm = apply_normalize(normalize, signal_type, value, fp_line, col)
        if norm is None:
            continue
        fb = feedback.get(fp_tag)
        rec = build(fp, signal_type, norm, {"ncmec_feedback": fb} if fb else {}, fp_line)
        if rec is None:
            continue
        col.counts.records += 1
        yield rec


def _read_feedback(el) -> dict[str, list[dict]]:
    """``{fingerprint tag: [vote, …]}``; votes are ``{"vote": "up"|"down", "member_id", "member_name"[,
    "reason", "reason_guid"]}`` with all upvotes first, in document order."""
    if el is None:
        return {}
    ups: dict[str, list[dict]] = {}
    downs: dict[str, list[dict]] = {}
    for block in _children(el):
        kind = _local(block.tag)
        fp_type = (block.get("type") or "").lower()
        if kind == "affirmativeFeedback":
            for members in _children(block):
                if _local(members.tag) == "members":
                    for m in _children(members):
                        ups.setdefault(fp_type, []).append(_vote("up", m))
        elif kind == "negativeFeedback":
            for reasons in _children(block):
                if _local(reasons.tag) != "reasons":
                    continue
                reason: dict = {}
                for c in _children(reasons):  # <reason/> <members>…</members> pairs
                    if _local(c.tag) == "reason":
                        reason = {"reason": c.get("name") or "", "reason_guid": c.get("guid") or ""}
                    elif _local(c.tag) == "members":
                        for m in _children(c):
                            v = _vote("down", m)
                            v.update(reason)
                            downs.setdefault(fp_type, []).append(v)
    out: dict[str, list[dict]] = {}
    for k in list(ups) + [k for k in downs if k not in ups]:
        out[k] = ups.get(k, []) + downs.get(k, [])
    return out


def _vote(kind: str, member) -> dict:
    return {"vote": kind, "member_id": member.get("id") or "", "member_name": _text(member) or ""}


# ----------------------------------------------------------------------------------------------------------
# Writing


def _str(v) -> bool:
    return isinstance(v, str) and v != ""


def _entry_key(rec: EntryRecord):
    """The entry-level facts of ``rec`` (shared by all fingerprints of one NCMEC entry) and the metadata
    keys they consume."""
    md = rec.metadata or {}
    used = []
    media = md.get("media")
    if media in ("image", "video"):
        used.append("media")
        implicit = False
    else:
        media, implicit = "image", True
    fields = {}
    for k in ("member_id", "member_name", "timestamp", "ncmec_classification"):
        if _str(md.get(k)):
            fields[k] = md[k]
            used.append(k)
    deleted = md.get("deleted") is True
    if deleted:
        used.append("deleted")
    key = (
        rec.external_id,
        media,
        implicit,
        deleted,
        tuple(sorted(fields.items())),
        rec.category,
        rec.is_tombstone,
    )
    return key, used


def _feedback_ok(v) -> bool:
    if not isinstance(v, list) or not v:
        return False
    seen_down = False
    for item in v:
        if not isinstance(item, dict) or not all(isinstance(x, str) for x in item.values()):
            return False
        if item.get("vote") == "up":
            if seen_down or set(item) != {"vote", "member_id", "member_name"}:
                return False
        elif item.get("vote") == "down":
            seen_down = True
            if set(item) != {"vote", "member_id", "member_name", "reason", "reason_guid"}:
                return False
        else:
            return False
    return True


def _set_extras(holder, rec: EntryRecord, used: list[str], default_enabled: bool, consumed_feedback: bool) -> None:
    if rec.source != DEFAULT_SOURCE:
        holder.set(_sh("source"), rec.source or "")
    if rec.note is not None:
        holder.set(_sh("note"), rec.note)
    if rec.enabled != default_enabled:
        holder.set(_sh("enabled"), "true" if rec.enabled else "false")
    rest = {k: v for k, v in (rec.metadata or {}).items() if k not in used}
    if consumed_feedback:
        rest.pop("ncmec_feedback", None)
    if rest:
        try:
            holder.set(_sh("meta"), json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
        except (TypeError, ValueError) as e:
            raise SafeholdError("export.invalid_metadata", f"metadata is not JSON-serialisable: {e}") from e


def _build_entry(group: list[EntryRecord], key, used: list[str]):
    external_id, media, implicit, deleted, fields, category, tombstone = key
    fields = dict(fields)
    # A tombstone is always written as a deleted entry (the only NCMEC entry without fingerprints).
    tag = ("deleted" + media.capitalize()) if (deleted or tombstone) else media
    entry = etree.Element(f"{{{NCMEC_NS}}}{tag}")
    if tombstone and not deleted:
        entry.set(_sh("deletedFlag"), "false")
    if implicit:
        entry.set(_sh("implicitMedia"), "true")
    if "member_id" in fields or "member_name" in fields:
        m = etree.SubElement(entry, f"{{{NCMEC_NS}}}member")
        if "member_id" in fields:
            m.set("id", fields["member_id"])
        if "member_name" in fields:
            m.text = fields["member_name"]
    if "timestamp" in fields:
        etree.SubElement(entry, f"{{{NCMEC_NS}}}timestamp").text = fields["timestamp"]
    if external_id is not None:
        etree.SubElement(entry, f"{{{NCMEC_NS}}}id").text = external_id
    if category in INDUSTRY_CATEGORIES:
        etree.SubElement(entry, f"{{{NCMEC_NS}}}classification").text = category
    elif "ncmec_classification" in fields:
        etree.SubElement(entry, f"{{{NCMEC_NS}}}classification").text = fields["ncmec_classification"]
    if category is not None and category not in INDUSTRY_CATEGORIES:
        entry.set(_sh("category"), category)
    default_enabled = not (deleted or tombstone)
    if tombstone:
        rec = group[0]
        if rec.value:
            raise SafeholdError("export.invalid_value", "a tombstone record must have an empty value")
        _set_extras(entry, rec, used, default_enabled, False)
        return entry
    fps = etree.SubElement(entry, f"{{{NCMEC_NS}}}fingerprints")
    votes: list[tuple[str, list[dict]]] = []
    for rec in group:
        st = rec.signal_type
        fp_tag = SIGNAL_TO_FINGERPRINT.get(st, st)
        if not valid_signal_type_name(st) or fp_tag.lower() in ("", "xml") or not fp_tag[0].isalpha():
            raise SafeholdError("export.invalid_signal_type", f"cannot export signal type {short(st)} as XML")
        fp = etree.SubElement(fps, f"{{{NCMEC_NS}}}{fp_tag}")
        fp.text = rec.value
        fb = (rec.metadata or {}).get("ncmec_feedback")
        ok = _feedback_ok(fb) and all(t != fp_tag for t, _ in votes)
        if ok:
            votes.append((fp_tag, fb))
        _set_extras(fp, rec, used, default_enabled, ok)
    if votes:
        feedback = etree.SubElement(entry, f"{{{NCMEC_NS}}}feedback")
        for fp_tag, fb in votes:
            type_name = fp_tag.capitalize()
            ups = [v for v in fb if v["vote"] == "up"]
            downs = [v for v in fb if v["vote"] == "down"]
            if ups:
                a = etree.SubElement(feedback, f"{{{NCMEC_NS}}}affirmativeFeedback", type=type_name)
                ms = etree.SubElement(a, f"{{{NCMEC_NS}}}members")
                for v in ups:
                    _member(ms, v)
            if downs:
                n = etree.SubElement(feedback, f"{{{NCMEC_NS}}}negativeFeedback", type=type_name)
                rs = etree.SubElement(n, f"{{{NCMEC_NS}}}reasons")
                prev = None
                ms = None
                for v in downs:
                    reason = (v["reason"], v["reason_guid"])
                    if reason != prev or ms is None:
                        etree.SubElement(
                            rs,
                            f"{{{NCMEC_NS}}}reason",
                            guid=v["reason_guid"],
                            name=v["reason"],
                            type=type_name,
                        )
                        ms = etree.SubElement(rs, f"{{{NCMEC_NS}}}members")
                        prev = reason
                    _member(ms, v)
    return entry


def _member(parent, vote: dict) -> None:
    m = etree.SubElement(parent, f"{{{NCMEC_NS}}}member", id=vote["member_id"])
    m.text = vote["member_name"]


def _groups(records: Iterable[EntryRecord]):
    """Consecutive records with the same ``external_id`` and entry-level facts form one entry."""
    group: list[EntryRecord] = []
    gkey = gused = None
    for rec in records:
        key, used = _entry_key(rec)
        if group and key == gkey and key[0] is not None and not key[6]:
            group.append(rec)
            continue
        if group:
            yield group, gkey, gused
        group, gkey, gused = [rec], key, used
    if group:
        yield group, gkey, gused


def write_ncmec_xml(records: Iterable[EntryRecord], stream) -> int:
    """Write ``records`` as an NCMEC ``queryResult`` document; return the number of entries written.

    Consecutive records sharing ``external_id`` (and member, timestamp, media, category, deleted flag)
    become one entry with several fingerprints. Entries go in ``<images>``/``<videos>`` blocks of at most
    ``ENTRIES_PER_BLOCK`` entries, each with ``count`` and ``maxTimestamp`` (when timestamps are known); a
    change of media starts a new block.
    """
    import io

    sink = stream
    finish = None
    if isinstance(stream, io.TextIOBase):
        from ._common import BytesSink

        sink = BytesSink(stream)
        finish = sink.flush
    n = 0
    try:
        with etree.xmlfile(sink, encoding="utf-8") as xf:
            xf.write_declaration(standalone=True)
            with xf.element(f"{{{NCMEC_NS}}}queryResult", nsmap={None: NCMEC_NS, "sh": SH_NS}):
                block: list = []
                block_media = None
                timestamps: list[str] = []

                def flush():
                    if not block:
                        return
                    c = etree.Element(
                        f"{{{NCMEC_NS}}}{block_media}s",
                        count=str(len(block)),
                        nsmap={None: NCMEC_NS, "sh": SH_NS},
                    )
                    if timestamps:
                        c.set("maxTimestamp", max(timestamps))
                    for e in block:
                        c.append(e)
                    xf.write(c, pretty_print=True)
                    block.clear()
                    timestamps.clear()

                for group, key, used in _groups(records):
                    media = key[1]
                    if media != block_media or len(block) >= ENTRIES_PER_BLOCK:
                        flush()
                        block_media = media
                    try:
                        block.append(_build_entry(group, key, used))
                    except ValueError as e:  # lxml: text that XML cannot carry (control characters, …)
                        raise SafeholdError("export.invalid_value", f"cannot write entry as XML: {e}") from e
                    ts = dict(key[4]).get("timestamp")
                    if ts:
                        timestamps.append(ts)
                    n += 1
                flush()
    finally:
        if finish:
            finish()
    return n
