"""Shared pieces of the bank import/export formats: the record and issue types, the issue collector,
byte-stream helpers and value/category validation.

Readers work on *binary* streams (text streams are accepted and re-encoded as UTF-8) and never raise on bad
input: every problem becomes an :class:`ImportIssue` with a stable ``import.*`` code and the record is
skipped.
"""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from safehold.errors import SafeholdError

#: ``normalize(signal_type, value) -> canonical value``; raises :class:`SafeholdError`.
Normalizer = Callable[[str, str], str]

#: ``signal_type`` of a tombstone record: "every entry from this source with this ``external_id`` is
#: withdrawn".
TOMBSTONE_SIGNAL_TYPE = "*"

#: Longest physical line a reader accepts (bytes); longer lines are skipped with ``import.line_too_long``.
MAX_LINE_BYTES = 1 << 20
#: Longest CSV record (all physical lines of one row, bytes); beyond it the import stops
#: (``import.record_too_large``).
MAX_RECORD_BYTES = 4 << 20
#: How much of a stream ``auto`` looks at to decide the format.
DETECT_BYTES = 64 << 10

INDUSTRY_CATEGORIES = ("A1", "A2", "B1", "B2")
_SLUG = re.compile(r"[a-z0-9_-]{1,64}\Z")
#: A category as a request schema publishes it: an industry category (any case) or a slug. normalize_category also
#: takes blanks around it, and a blank value as none.
CATEGORY_PATTERN = "^(?:[AaBb][12]|[a-z0-9_-]{1,64})$"
_SIGNAL_TYPE_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}\Z")


# Issue codes (stable; clients may switch on them).
class Codes:
    ENCODING = "import.encoding"
    LINE_TOO_LONG = "import.line_too_long"
    RECORD_TOO_LARGE = "import.record_too_large"
    FIELD_TOO_LARGE = "import.field_too_large"
    CSV_HEADER = "import.csv_header"
    CSV_SYNTAX = "import.csv_syntax"
    COLUMN_COUNT = "import.column_count"
    UNKNOWN_SIGNAL_TYPE = "import.unknown_signal_type"
    AMBIGUOUS_SIGNAL_TYPE = "import.ambiguous_signal_type"
    INVALID_VALUE = "import.invalid_value"
    INVALID_CATEGORY = "import.invalid_category"
    INVALID_ENABLED = "import.invalid_enabled"
    INVALID_METADATA = "import.invalid_metadata"
    INVALID_TOMBSTONE = "import.invalid_tombstone"
    XML_INVALID = "import.xml_invalid"
    XML_FORBIDDEN = "import.xml_forbidden"
    XML_UNEXPECTED = "import.xml_unexpected_element"
    NO_FINGERPRINTS = "import.no_fingerprints"
    FINGERPRINT_NOT_INLINE = "import.fingerprint_not_inline"
    TOO_MANY_ISSUES = "import.too_many_issues"


@dataclass
class EntryRecord:
    """One hash-bank entry with its provenance, as read from or written to a file."""

    signal_type: str
    value: str
    source: str | None = None  # e.g. "ncmec", "iwf", "own"
    external_id: str | None = None  # id in the source list
    category: str | None = None  # A1/A2/B1/B2 or a free category slug
    note: str | None = None
    metadata: dict = field(default_factory=dict)  # any extra columns/fields
    enabled: bool = True

    @property
    def is_tombstone(self) -> bool:
        """True for a deletion marker without a hash (NCMEC ``deletedImage``/``deletedVideo``): it withdraws
        every entry of ``source`` with this ``external_id``."""
        return self.signal_type == TOMBSTONE_SIGNAL_TYPE


@dataclass(frozen=True)
class ImportIssue:
    """A problem found in the input. ``line`` is the 1-based physical line (``None`` when unknown)."""

    line: int | None
    code: str
    message: str

    def to_dict(self) -> dict:
        return {"line": self.line, "code": self.code, "message": self.message}


@dataclass
class ImportCounts:
    """``rows``: data rows / list lines / XML fingerprints (and tombstones) seen; ``records``: yielded;
    ``skipped``: rows refused because of an issue; ``issues``: every issue found, including those not kept in
    :attr:`ImportResult.issues` (``issues_dropped``) once ``max_issues`` was reached; ``by_code``: issues
    per code."""

    rows: int = 0
    records: int = 0
    skipped: int = 0
    issues: int = 0
    issues_dropped: int = 0
    by_code: Counter = field(default_factory=Counter)


class Collector:
    """Collects issues (at most ``max_issues`` kept, all counted) and counts for one import."""

    def __init__(self, max_issues: int = 1000):
        self.max_issues = max(0, int(max_issues))
        self.issues: list[ImportIssue] = []
        self.counts = ImportCounts()
        self.fatal = False

    def issue(self, line: int | None, code: str, message: str, *, skipped: bool = True, fatal: bool = False) -> None:
        c = self.counts
        c.issues += 1
        c.by_code[code] += 1
        if skipped:
            c.skipped += 1
        if fatal:
            self.fatal = True
        if len(self.issues) < self.max_issues:
            self.issues.append(ImportIssue(line, code, message))
        else:
            c.issues_dropped += 1


def short(value: str, limit: int = 80) -> str:
    """A value shortened for messages."""
    return repr(value if len(value) <= limit else value[:limit] + "…")


def normalize_category(value: str | None) -> str | None:
    """``A1``/``A2``/``B1``/``B2`` (any case → upper case) or a slug ``[a-z0-9_-]{1,64}``; blank → ``None``.

    Raises ``SafeholdError('bank.invalid_category')`` otherwise.
    """
    if value is None:
        return None
    v = value.strip()
    if not v:
        return None
    if v.upper() in INDUSTRY_CATEGORIES:
        return v.upper()
    if _SLUG.match(v):
        return v
    raise SafeholdError(
        "bank.invalid_category",
        f"invalid category {short(v)}: use A1, A2, B1, B2 or a slug of 1-64 characters [a-z0-9_-]",
    )


def valid_signal_type_name(name: str) -> bool:
    return bool(_SIGNAL_TYPE_NAME.match(name))


def apply_normalize(
    normalize: Normalizer, signal_type: str, value: str, line: int | None, col: Collector
) -> str | None:
    """Run the caller's normaliser; map its errors to issues (``signal.unknown_type`` → unknown signal
    type)."""
    try:
        out = normalize(signal_type, value)
    except SafeholdError as e:
        if e.code == "signal.unknown_type":
            col.issue(line, Codes.UNKNOWN_SIGNAL_TYPE, f"unknown signal type {short(signal_type)}: {e.message}")
        else:
            col.issue(line, Codes.INVALID_VALUE, f"invalid {signal_type} value {short(value)}: {e.message}")
        return None
    except (ValueError, TypeError) as e:
        col.issue(line, Codes.INVALID_VALUE, f"invalid {signal_type} value {short(value)}: {e}")
        return None
    if not isinstance(out, str) or not out:
        col.issue(line, Codes.INVALID_VALUE, f"invalid {signal_type} value {short(value)}")
        return None
    return out


def parse_metadata(text: str, line: int | None, col: Collector, field: str) -> dict | None:
    """A metadata cell/attribute: a JSON object, or ``None`` after recording ``import.invalid_metadata``."""
    try:
        value = json.loads(text)
    except ValueError as e:
        col.issue(line, Codes.INVALID_METADATA, f"{field} is not valid JSON: {e}")
        return None
    if not isinstance(value, dict):
        col.issue(line, Codes.INVALID_METADATA, f"{field} must be a JSON object")
        return None
    return value


def check_tombstone(rec: EntryRecord, line: int | None, col: Collector) -> bool:
    """A tombstone needs an empty value, an ``external_id`` and ``enabled=False``."""
    if rec.value or not rec.external_id or rec.enabled:
        col.issue(
            line,
            Codes.INVALID_TOMBSTONE,
            "a tombstone (signal_type '*') needs an empty value, an external_id and enabled=false",
        )
        return False
    return True


# ----------------------------------------------------------------------------------------------------------
# Streams


class _EncodedRaw(io.RawIOBase):
    """A binary view of a text stream (UTF-8; lone surrogates from ``surrogateescape`` come back as their
    bytes)."""

    def __init__(self, text):
        self._text = text
        self._buf = b""
        self._eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._buf and not self._eof:
            chunk = self._text.read(16384)
            if not chunk:
                self._eof = True
                break
            self._buf = chunk.encode("utf-8", "surrogateescape")
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


class _PrefixedRaw(io.RawIOBase):
    """``prefix`` followed by the rest of ``stream`` (used after peeking for format detection)."""

    def __init__(self, prefix: bytes, stream):
        self._prefix = prefix
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self._prefix:
            n = min(len(b), len(self._prefix))
            b[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = self._stream.read(len(b))
        if not data:
            return 0
        n = len(data)
        b[:n] = data
        return n


def as_binary(stream):
    """A buffered binary stream for ``stream`` (binary or text)."""
    if isinstance(stream, io.TextIOBase):
        return io.BufferedReader(_EncodedRaw(stream), 1 << 16)
    if isinstance(stream, io.BufferedIOBase) and hasattr(stream, "readline"):
        return stream
    return io.BufferedReader(_PrefixedRaw(b"", stream), 1 << 16)


def peek_prefix(stream, size: int = DETECT_BYTES):
    """Read up to ``size`` bytes without losing them: returns ``(prefix, stream_with_prefix_restored)``."""
    bstream = as_binary(stream)
    parts: list[bytes] = []
    got = 0
    while got < size:
        chunk = bstream.read(size - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    prefix = b"".join(parts)
    return prefix, io.BufferedReader(_PrefixedRaw(prefix, bstream), 1 << 16)


UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
UTF8_BOM = b"\xef\xbb\xbf"

LINE_OK = 0
LINE_BAD_ENCODING = 1
LINE_TOO_LONG = 2


def physical_lines(bstream, col: Collector) -> Iterator[tuple[int, str, int]]:
    """Yield ``(line_number, text, status)`` for each physical line (line ending kept), in constant memory.

    ``status`` is ``LINE_OK``, ``LINE_BAD_ENCODING`` (text decoded with replacement characters) or
    ``LINE_TOO_LONG`` (text is ``"\\n"``; the rest of the line was discarded unread). A UTF-16 byte-order
    mark is a fatal ``import.encoding`` issue.
    """
    lineno = 0
    first = True
    while True:
        raw = bstream.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        lineno += 1
        if first:
            first = False
            if raw.startswith(UTF16_BOMS):
                col.issue(
                    1,
                    Codes.ENCODING,
                    "UTF-16 input is not supported: convert the file to UTF-8",
                    skipped=False,
                    fatal=True,
                )
                return
            if raw.startswith(UTF8_BOM):
                raw = raw[len(UTF8_BOM) :]
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while True:  # discard the rest of the over-long line in bounded chunks
                rest = bstream.readline(MAX_LINE_BYTES)
                if not rest or rest.endswith(b"\n"):
                    break
            yield lineno, "\n", LINE_TOO_LONG
            continue
        try:
            yield lineno, raw.decode("utf-8"), LINE_OK
        except UnicodeDecodeError:
            yield lineno, raw.decode("utf-8", "replace"), LINE_BAD_ENCODING


def text_writer(stream):
    """``(text_stream, finish)`` for writing ``str`` to a text or binary stream; ``finish()`` flushes and
    detaches."""
    if isinstance(stream, io.TextIOBase):
        return stream, lambda: None
    wrapper = io.TextIOWrapper(_WriteOnly(stream), encoding="utf-8", newline="", write_through=True)

    def finish():
        wrapper.flush()
        wrapper.detach()

    return wrapper, finish


class _WriteOnly(io.RawIOBase):
    """Adapts any object with ``write(bytes)`` for ``TextIOWrapper`` (and keeps it open on detach)."""

    def __init__(self, stream):
        self._stream = stream

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self._stream.write(bytes(b))
        return len(b)


class BytesSink:
    """Adapts a text stream for writers that produce bytes (lxml's ``xmlfile``)."""

    def __init__(self, text_stream):
        self._s = text_stream
        import codecs

        self._dec = codecs.getincrementaldecoder("utf-8")()

    def write(self, b) -> int:
        self._s.write(self._dec.decode(bytes(b)))
        return len(b)

    def flush(self) -> None:
        self._s.write(self._dec.decode(b"", final=True))
