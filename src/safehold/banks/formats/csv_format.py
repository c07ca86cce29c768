"""CSV bank files: a header row naming the columns, one entry per row.

Required columns ``signal_type`` and ``value``; known optional columns ``source``, ``external_id``,
``category``, ``note``, ``enabled`` and ``metadata`` (a JSON object); any other column goes into
``metadata`` as a string. See ``docs/bank-formats.md`` for every rule.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator

from safehold.errors import SafeholdError

from ._common import (
    LINE_BAD_ENCODING,
    LINE_OK,
    LINE_TOO_LONG,
    MAX_RECORD_BYTES,
    TOMBSTONE_SIGNAL_TYPE,
    Codes,
    Collector,
    EntryRecord,
    Normalizer,
    apply_normalize,
    check_tombstone,
    normalize_category,
    parse_metadata,
    physical_lines,
    short,
    text_writer,
    valid_signal_type_name,
)

REQUIRED_COLUMNS = ("signal_type", "value")
KNOWN_COLUMNS = ("source", "external_id", "category", "note", "enabled", "metadata")
#: Column order the writer uses.
WRITE_COLUMNS = ("signal_type", "value", "source", "external_id", "category", "note", "enabled", "metadata")

_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}

# Spreadsheet formula injection guard (OWASP "CSV Injection"): the writer prefixes free-text cells that a
# spreadsheet would run as a formula with one apostrophe; the reader removes exactly one such apostrophe, so
# the round trip is exact (a text that itself starts with apostrophes before a trigger gets one more).
_FORMULA = re.compile(r"'*[=+\-@\t\r]")


def escape_cell(text: str) -> str:
    return "'" + text if _FORMULA.match(text) else text


def unescape_cell(text: str) -> str:
    return text[1:] if text.startswith("'") and _FORMULA.match(text[1:]) else text


class _RecordTooLarge(Exception):
    pass


class _LineFeeder:
    """Feeds decoded lines to ``csv.reader``; drops blank and ``#`` comment lines between records, remembers
    the first physical line of the current record and which lines had encoding or length problems."""

    def __init__(self, bstream, col: Collector):
        self._lines = physical_lines(bstream, col)
        self.at_boundary = True
        self.start_line = 0
        self.last_line = 0
        self.record_bytes = 0
        self.bad: dict[int, int] = {}

    def __iter__(self):
        return self

    def __next__(self) -> str:
        for lineno, text, status in self._lines:
            self.last_line = lineno
            if self.at_boundary:
                stripped = text.strip()
                if status != LINE_TOO_LONG and (not stripped or stripped.startswith("#")):
                    continue
                self.at_boundary = False
                self.start_line = lineno
                self.record_bytes = 0
            if status != LINE_OK:
                self.bad[lineno] = status
            self.record_bytes += len(text)
            if self.record_bytes > MAX_RECORD_BYTES:
                raise _RecordTooLarge()
            return text
        raise StopIteration

    def end_record(self) -> int | None:
        """Close the current record; return the worst line status seen in it (or ``None``)."""
        self.at_boundary = True
        if not self.bad:
            return None
        statuses = set(self.bad.values())
        self.bad.clear()
        return LINE_BAD_ENCODING if LINE_BAD_ENCODING in statuses else LINE_TOO_LONG


def _parse_enabled(text: str) -> bool | None:
    t = text.strip().lower()
    if t == "" or t in _TRUE:
        return True
    if t in _FALSE:
        return False
    return None


def read_csv(bstream, *, normalize: Normalizer, source: str | None, col: Collector) -> Iterator[EntryRecord]:
    feeder = _LineFeeder(bstream, col)
    reader = csv.reader(feeder, strict=True)
    header: list[str] | None = None
    idx: dict[str, int] = {}
    while True:
        try:
            row = next(reader)
        except StopIteration:
            if header is None and not col.fatal:
                col.issue(None, Codes.CSV_HEADER, "empty file: no CSV header row", skipped=False, fatal=True)
            break
        except _RecordTooLarge:
            col.issue(
                feeder.start_line,
                Codes.RECORD_TOO_LARGE,
                f"record starting here is larger than {MAX_RECORD_BYTES} bytes (unclosed quote?); import stopped",
                fatal=True,
            )
            return
        except csv.Error as e:
            status = feeder.end_record()
            if header is not None:
                col.counts.rows += 1
            if status == LINE_BAD_ENCODING:
                col.issue(feeder.start_line, Codes.ENCODING, "row is not valid UTF-8")
            elif "field larger than field limit" in str(e):
                span = (
                    f" (row spans lines {feeder.start_line}-{feeder.last_line}: unclosed quote?)"
                    if feeder.last_line > feeder.start_line
                    else ""
                )
                col.issue(feeder.start_line, Codes.FIELD_TOO_LARGE, f"field too large: {e}{span}")
            else:
                col.issue(feeder.start_line, Codes.CSV_SYNTAX, f"CSV syntax error: {e}")
            if header is None:
                col.issue(
                    feeder.start_line,
                    Codes.CSV_HEADER,
                    "cannot read the CSV header row",
                    skipped=False,
                    fatal=True,
                )
                return
            continue
        line = feeder.start_line
        status = feeder.end_record()

        if header is None:
            if status is not None:
                col.issue(
                    line,
                    Codes.ENCODING if status == LINE_BAD_ENCODING else Codes.LINE_TOO_LONG,
                    "header row is unreadable",
                    skipped=False,
                )
                col.issue(line, Codes.CSV_HEADER, "cannot read the CSV header row", skipped=False, fatal=True)
                return
            names = [h.strip().lower() for h in row]
            problem = _check_header(names)
            if problem:
                col.issue(line, Codes.CSV_HEADER, problem, skipped=False, fatal=True)
                return
            header = names
            idx = {n: i for i, n in enumerate(names)}
            continue

        col.counts.rows += 1
        if status == LINE_BAD_ENCODING:
            col.issue(line, Codes.ENCODING, "row is not valid UTF-8")
            continue
        if status == LINE_TOO_LONG:
            col.issue(line, Codes.LINE_TOO_LONG, "row has a line longer than the limit")
            continue
        if any("\x00" in f for f in row):
            col.issue(line, Codes.CSV_SYNTAX, "row contains a NUL character")
            continue
        if len(row) != len(header):
            col.issue(line, Codes.COLUMN_COUNT, f"expected {len(header)} columns, found {len(row)}")
            continue
        rec = _row_to_record(row, header, idx, line, normalize, source, col)
        if rec is not None:
            col.counts.records += 1
            yield rec


def _check_header(names: list[str]) -> str | None:
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        return (
            f"first row is not a header (missing column {', '.join(missing)}): "
            "a CSV bank file must start with a "
            "header row such as 'signal_type,value' (add one, or import the file as a plain hash list)"
        )
    if any(not n for n in names):
        return "header has an empty column name"
    seen = set()
    for n in names:
        if n in seen:
            return f"header repeats column {short(n)}"
        seen.add(n)
    return None


def _row_to_record(row, header, idx, line, normalize, default_source, col) -> EntryRecord | None:
    def cell(name: str) -> str | None:
        i = idx.get(name)
        return row[i] if i is not None else None

    signal_type = (cell("signal_type") or "").strip().lower()
    value = (cell("value") or "").strip()
    if not signal_type:
        col.issue(line, Codes.UNKNOWN_SIGNAL_TYPE, "empty signal_type")
        return None

    src = cell("source")
    src = unescape_cell(src) if src else None
    ext = cell("external_id")
    ext = unescape_cell(ext) if ext else None
    note = cell("note")
    note = unescape_cell(note) if note else None

    try:
        category = normalize_category(cell("category"))
    except SafeholdError as e:
        col.issue(line, Codes.INVALID_CATEGORY, e.message)
        return None

    enabled_text = cell("enabled")
    enabled = True if enabled_text is None else _parse_enabled(enabled_text)
    if enabled is None:
        col.issue(line, Codes.INVALID_ENABLED, f"enabled must be true/false, found {short(enabled_text)}")
        return None

    metadata: dict = {}
    for i, name in enumerate(header):
        if name not in REQUIRED_COLUMNS and name not in KNOWN_COLUMNS and row[i] != "":
            metadata[name] = unescape_cell(row[i])
    meta_text = cell("metadata")
    if meta_text and meta_text.strip():
        extra = parse_metadata(meta_text, line, col, "metadata")
        if extra is None:
            return None
        metadata.update(extra)

    rec = EntryRecord(
        signal_type=signal_type,
        value=value,
        source=src if src is not None else default_source,
        external_id=ext,
        category=category,
        note=note,
        metadata=metadata,
        enabled=enabled,
    )
    if signal_type == TOMBSTONE_SIGNAL_TYPE:
        return rec if check_tombstone(rec, line, col) else None
    if not value:
        col.issue(line, Codes.INVALID_VALUE, "empty value")
        return None
    norm = apply_normalize(normalize, signal_type, value, line, col)
    if norm is None:
        return None
    rec.value = norm
    return rec


def write_csv(records: Iterable[EntryRecord], stream) -> int:
    """Write ``records`` as CSV (header + one row each, CRLF line ends as in RFC 4180); return rows
    written."""
    out, finish = text_writer(stream)
    try:
        w = csv.writer(out, lineterminator="\r\n")
        w.writerow(WRITE_COLUMNS)
        n = 0
        for rec in records:
            st = rec.signal_type
            if st != TOMBSTONE_SIGNAL_TYPE and not valid_signal_type_name(st):
                raise SafeholdError("export.invalid_signal_type", f"cannot export signal type {short(st)}")
            if rec.metadata:
                try:
                    meta = json.dumps(rec.metadata, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                except (TypeError, ValueError) as e:
                    raise SafeholdError("export.invalid_metadata", f"metadata is not JSON-serialisable: {e}") from e
            else:
                meta = ""
            w.writerow(
                (
                    st,
                    rec.value,
                    escape_cell(rec.source or ""),
                    escape_cell(rec.external_id or ""),
                    rec.category or "",
                    escape_cell(rec.note or ""),
                    "true" if rec.enabled else "false",
                    meta,
                )
            )
            n += 1
        return n
    finally:
        finish()
