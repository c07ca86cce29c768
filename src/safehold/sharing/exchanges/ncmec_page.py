"""Reading one page of NCMEC's ``/v2/entries`` (a ``<queryResult>``) into bank records, as it streams in.

Separate from the exchange (:mod:`safehold.sharing.exchanges.ncmec`) because it is the hot path of a fetch and the
part that meets hostile input: what is refused, what is counted malformed, and how fingerprint types map to
Safehold's signal types are all here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from lxml import etree

from safehold.banks.formats._common import INDUSTRY_CATEGORIES, EntryRecord
from safehold.banks.formats.ncmec_xml import FINGERPRINT_TO_SIGNAL
from safehold.errors import SafeholdError
from safehold.sharing.base import ExchangeError, UnknownSignal, tombstone
from safehold.signals import registry
from safehold.signals.base import SignalType

#: Deepest element nesting accepted in an answer (entries need 7: queryResult/images/image/feedback/…/member).
MAX_DEPTH = 16
#: Most entries one page may hold (NCMEC's pages hold 1000).
MAX_PAGE_ENTRIES = 10_000
#: Most fingerprints one entry may carry; longest fingerprint value (characters).
MAX_FINGERPRINTS = 32
MAX_VALUE_CHARS = 65536
#: Sample problem messages kept per batch.
MAX_PROBLEMS = 5
#: The only elements the page parser gets events for: the root, entries and the paging link.
_EVENT_TAGS = ["{*}queryResult", "{*}image", "{*}video", "{*}deletedImage", "{*}deletedVideo", "{*}next"]
#: Too deep: an element at depth MAX_DEPTH + 1 below the root (absolute), or below an entry (an entry is at 3).
_DEEP = etree.XPath("boolean(" + "/".join(["*"] * MAX_DEPTH) + ")")
_DEEP_ENTRY = etree.XPath("boolean(" + "/".join(["*"] * (MAX_DEPTH - 2)) + ")")


@lru_cache(maxsize=1024)  # a page has a dozen distinct tags; this is a hot path
def local_name(tag) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def text_of(el) -> str | None:
    if el is None or el.text is None:
        return None
    return el.text.strip() or None


def signal_type_of(fingerprint_tag: str) -> str:
    """The Safehold signal type name of an NCMEC fingerprint element."""
    tag = fingerprint_tag.lower()
    return FINGERPRINT_TO_SIGNAL.get(tag, tag.replace("-", "_"))


@dataclass
class Page:
    """One parsed ``/v2/entries`` answer."""

    records: list[EntryRecord] = field(default_factory=list)
    unknown: list[UnknownSignal] = field(default_factory=list)
    malformed: int = 0
    problems: list[str] = field(default_factory=list)
    next: str | None = None
    entries: int = 0

    def problem(self, message: str) -> None:
        self.malformed += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(message)


class PageParser:
    """Streaming parser of one entries page: fed bytes as they arrive, each entry handled and freed at its end.

    Only the root, the entries and the paging link raise parse events (most of the cost of reading a page is a
    Python object per element and event otherwise). Hostile XML is refused with ``exchange.protocol``: a DOCTYPE
    (so no entity can be declared), nesting deeper than :data:`MAX_DEPTH` (checked in each entry before it is
    read, and in what is left of the page at its end; libxml2 caps nesting while parsing too), more than
    :data:`MAX_PAGE_ENTRIES` entries. libxml2 never resolves entities, loads DTDs or touches the network here."""

    def __init__(self, keep: Callable[[str], bool], known: Callable[[str], type[SignalType] | None]):
        self._keep = keep
        self._known = known
        self._readers: dict[str, tuple[str, str, type[SignalType] | None]] = {}
        self._parser = etree.XMLPullParser(
            events=("start", "end"),
            tag=_EVENT_TAGS,  # no event (and no Python object) for the dozen elements inside each entry
            resolve_entities=False,
            load_dtd=False,
            no_network=True,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
        )
        self._started = False
        self.page = Page()

    def feed(self, data: bytes) -> None:
        try:
            self._parser.feed(data)
            self._drain()
        except etree.XMLSyntaxError as e:
            raise protocol_error(f"malformed XML from NCMEC: {e}") from None

    def close(self) -> Page:
        try:
            root = self._parser.close()
            self._drain()
        except etree.XMLSyntaxError as e:
            raise protocol_error(f"malformed XML from NCMEC: {e}") from None
        self._root(root)  # a root without events (not <queryResult>) is refused here
        if _DEEP(root):
            raise protocol_error(f"XML nested deeper than {MAX_DEPTH} elements refused")
        return self.page

    def _drain(self) -> None:
        for event, el in self._parser.read_events():
            if event == "start":
                if not self._started:
                    self._root(el)
                    self._started = True
                continue
            name = local_name(el.tag)
            if name == "queryResult":
                continue
            parent = el.getparent()
            block = local_name(parent.tag) if parent is not None else ""
            if name == "next" and block == "paging":
                self.page.next = text_of(el)
            elif block in ("images", "videos") and _depth(parent) == 2:
                if _DEEP_ENTRY(el):
                    raise protocol_error(f"XML nested deeper than {MAX_DEPTH} elements refused")
                self._entry(el)
                el.clear(keep_tail=False)
                while el.getprevious() is not None:
                    del parent[0]

    @staticmethod
    def _root(el) -> None:
        tree = el.getroottree()
        info = tree.docinfo
        if info.doctype or info.internalDTD is not None:
            raise protocol_error("XML with a DOCTYPE (DTD or entity declarations) refused")
        root = tree.getroot()
        if local_name(root.tag) != "queryResult":
            raise protocol_error(f"root element <{local_name(root.tag)}>, expected <queryResult>")

    def _reader(self, tag: str) -> tuple[str, str, type[SignalType] | None]:
        """``(element name, signal type name, the signal type reading it or None)`` of a fingerprint element."""
        if tag not in self._readers:
            if len(self._readers) > 4 * MAX_FINGERPRINTS:  # a hostile page inventing names: stop remembering
                self._readers.clear()
            name = local_name(tag)
            signal_type = signal_type_of(name)
            self._readers[tag] = (name, signal_type, self._known(signal_type))
        return self._readers[tag]

    def _entry(self, el) -> None:
        page = self.page
        page.entries += 1
        if page.entries > MAX_PAGE_ENTRIES:
            raise protocol_error(f"a page of more than {MAX_PAGE_ENTRIES} entries refused")
        tag = local_name(el.tag)
        deleted = tag.startswith("deleted")
        media = (tag[len("deleted") :] if deleted else tag).lower()
        if media not in ("image", "video"):
            page.problem(f"unexpected element <{tag}> in an entries block")
            return
        parts: dict = {}
        for c in el:
            if not isinstance(c.tag, str):
                page.problem(f"<{tag}> holds an entity reference")
                return
            parts.setdefault(local_name(c.tag), c)
        entry_id = text_of(parts.get("id"))
        member = parts.get("member")
        member_id = member.get("id", "").strip() if member is not None else ""
        if not entry_id or not member_id.isdigit():
            page.problem(f"<{tag}> without an <id> or a numeric member id")
            return
        if not self._keep(member_id):
            return
        external_id = f"{member_id}-{entry_id}"
        if deleted:
            page.records.append(tombstone(external_id))
            return
        fingerprints = parts.get("fingerprints")
        fps = [c for c in fingerprints if isinstance(c.tag, str)] if fingerprints is not None else []
        if not fps or len(fps) > MAX_FINGERPRINTS:
            page.problem(f"<{tag}> {external_id} has {len(fps)} fingerprints (1 to {MAX_FINGERPRINTS} expected)")
            return
        classification = text_of(parts.get("classification"))
        category = classification.upper() if classification and classification.upper() in INDUSTRY_CATEGORIES else None
        meta = {"media": media, "member_id": member_id, "ncmec_id": entry_id}
        member_name, timestamp = text_of(member), text_of(parts.get("timestamp"))
        if member_name:
            meta["member_name"] = member_name
        if timestamp:
            meta["timestamp"] = timestamp
        if classification and category is None:
            meta["ncmec_classification"] = classification
        for fp in fps:
            fp_tag, signal_type, reader = self._reader(fp.tag)
            value = text_of(fp)
            if value is None:
                href = fp.get("href")
                if href:  # a large fingerprint NCMEC only links to: kept as a reference, never dropped
                    page.unknown.append(UnknownSignal(signal_type, f"link:{href}", external_id))
                else:
                    page.problem(f"empty <{fp_tag}> in {external_id}")
                continue
            if len(value) > MAX_VALUE_CHARS:
                page.problem(f"<{fp_tag}> of {external_id} longer than {MAX_VALUE_CHARS} characters")
                continue
            if reader is None:
                page.unknown.append(UnknownSignal(signal_type, value, external_id))
                continue
            signal_type = reader.name
            try:
                value = reader.normalize(value)
            except SafeholdError as e:
                page.problem(f"<{fp_tag}> of {external_id}: {e.message}")
                continue
            page.records.append(
                EntryRecord(signal_type=signal_type, value=value, external_id=external_id, category=category,
                            metadata=dict(meta))
            )  # fmt: skip


def _depth(el) -> int:
    n = 1
    while (el := el.getparent()) is not None:
        n += 1
    return n


def protocol_error(message: str) -> ExchangeError:
    return ExchangeError("exchange.protocol", message, retryable=False)


def signal_readers() -> Callable[[str], type[SignalType] | None]:
    """The installed signal type reading a name or alias (``None``: none does), looked up once per name."""
    cache: dict[str, type[SignalType] | None] = {}

    def known(name: str) -> type[SignalType] | None:
        if name not in cache:
            try:
                cache[name] = registry.signal_type(name)
            except SafeholdError:
                cache[name] = None
        return cache[name]

    return known
