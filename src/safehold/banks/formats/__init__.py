"""Hash-bank import/export formats: CSV, plain hash lists and NCMEC hash-sharing XML.

A pure library (no database): :func:`read` turns a byte stream into :class:`EntryRecord` objects plus
:class:`ImportIssue` problems and counts, lazily and in constant memory; :func:`write` turns records back
into the same formats, so an export re-imports to equal records. Value checks are the caller's:
``normalize(signal_type, value)`` returns the canonical value or raises
:class:`safehold.errors.SafeholdError` (``signal.unknown_type`` for a type it does not know). Nothing here
raises on bad input; see ``docs/bank-formats.md``.

Example::

    with open("bank.csv", "rb") as f:
        result = read("auto", f, normalize=registry_normalize, source="own")
        for record in result:          # streams
            bank.add(record)
    print(result.counts, result.issues)
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator

from safehold.errors import SafeholdError

from ._common import (
    CATEGORY_PATTERN,
    INDUSTRY_CATEGORIES,
    TOMBSTONE_SIGNAL_TYPE,
    UTF8_BOM,
    Codes,
    Collector,
    EntryRecord,
    ImportCounts,
    ImportIssue,
    Normalizer,
    normalize_category,
    peek_prefix,
)
from .csv_format import read_csv, write_csv
from .hashlist import read_list, write_list
from .ncmec_xml import read_ncmec_xml, write_ncmec_xml

__all__ = [
    "CATEGORY_PATTERN",
    "FORMATS",
    "INDUSTRY_CATEGORIES",
    "TOMBSTONE_SIGNAL_TYPE",
    "Codes",
    "EntryRecord",
    "ExportResult",
    "ImportCounts",
    "ImportIssue",
    "ImportResult",
    "detect_format",
    "normalize_category",
    "read",
    "write",
]

#: Concrete formats (``read`` also takes ``auto``).
FORMATS = ("csv", "list", "ncmec-xml")


class ImportResult:
    """The outcome of :func:`read`.

    Iterate it (or :attr:`records`) to get the records; the iterator is lazy and single-pass, and ``issues``
    and ``counts`` grow while it runs — they are final once it is exhausted (:attr:`done`). :meth:`all` reads
    everything into a list for small inputs. At most ``max_issues`` issues are kept; ``counts.issues``
    counts all of them and ``counts.issues_dropped`` those not kept.
    """

    def __init__(self, fmt: str, records: Iterator[EntryRecord], collector: Collector):
        self.format = fmt
        self._col = collector
        self._it = records
        self.done = False
        self.records: Iterator[EntryRecord] = self._run()

    def _run(self) -> Iterator[EntryRecord]:
        try:
            yield from self._it
        finally:
            self.done = True

    def __iter__(self) -> Iterator[EntryRecord]:
        return self.records

    def all(self) -> list[EntryRecord]:
        """Read every remaining record into a list."""
        return list(self.records)

    @property
    def issues(self) -> list[ImportIssue]:
        return self._col.issues

    @property
    def counts(self) -> ImportCounts:
        return self._col.counts

    @property
    def fatal(self) -> bool:
        """True when a problem stopped the import before the end of the input."""
        return self._col.fatal

    def __repr__(self) -> str:
        c = self.counts
        return (
            f"ImportResult(format={self.format!r}, done={self.done}, records={c.records}, "
            f"skipped={c.skipped}, issues={c.issues})"
        )


class ExportResult(dict):
    """``{"format", "records", "left_out", "entries"}`` — what :func:`write` wrote."""


def detect_format(prefix: bytes) -> str:
    """Guess the format of a file from its first bytes.

    XML (after an optional BOM and white space the text starts with ``<``) → ``ncmec-xml``; else the first
    line that is neither blank nor a ``#`` comment decides: a CSV header naming ``signal_type`` and
    ``value``, or any line with a comma → ``csv`` (so a headerless CSV gets the clear "missing header"
    issue); otherwise ``list``.
    """
    data = prefix[len(UTF8_BOM) :] if prefix.startswith(UTF8_BOM) else prefix
    if data.lstrip()[:1] == b"<":
        return "ncmec-xml"
    for raw in data.split(b"\n"):
        line = raw.decode("utf-8", "replace").strip()
        if not line or line.startswith("#"):
            continue
        try:
            fields = next(csv.reader([line]))
        except (csv.Error, StopIteration):
            fields = []
        names = {f.strip().lower() for f in fields}
        if ("signal_type" in names and "value" in names) or "," in line:
            return "csv"
        return "list"
    return "list"


def read(
    fmt: str,
    stream,
    *,
    normalize: Normalizer,
    default_signal_type: str | None = None,
    source: str | None = None,
    max_issues: int = 1000,
) -> ImportResult:
    """Read a bank file.

    ``fmt``: ``csv``, ``list``, ``ncmec-xml`` or ``auto``. ``stream``: a binary file object (text streams are
    accepted and encoded as UTF-8). ``default_signal_type``: for plain lists (see :mod:`.hashlist`).
    ``source``: provenance given to records that carry none (NCMEC XML: defaults to ``ncmec``).
    Raises ``SafeholdError('import.unknown_format')`` only for an unknown ``fmt``; problems in the data are
    issues.
    """
    if fmt not in FORMATS and fmt != "auto":
        raise SafeholdError(
            "import.unknown_format",
            f"unknown bank file format {fmt!r}; use one of {', '.join(FORMATS + ('auto',))}",
        )
    col = Collector(max_issues)
    prefix, bstream = peek_prefix(stream)
    if fmt == "auto":
        fmt = detect_format(prefix)
    if fmt == "csv":
        it = read_csv(bstream, normalize=normalize, source=source, col=col)
    elif fmt == "list":
        it = read_list(bstream, normalize=normalize, default_signal_type=default_signal_type, source=source, col=col)
    else:
        it = read_ncmec_xml(bstream, normalize=normalize, source=source, col=col)
    return ImportResult(fmt, it, col)


def write(fmt: str, records: Iterable[EntryRecord], stream) -> ExportResult:
    """Write ``records`` to ``stream`` (binary, or text) in ``fmt`` (``csv``, ``list`` or ``ncmec-xml``).

    Records are consumed once, in order, in constant memory (NCMEC XML buffers one block of entries). Raises
    ``SafeholdError`` with an ``export.*`` code for a record the format cannot represent.
    """
    if fmt == "csv":
        n = write_csv(records, stream)
        return ExportResult(format=fmt, records=n, left_out=0, entries=n)
    if fmt == "list":
        n, left = write_list(records, stream)
        return ExportResult(format=fmt, records=n, left_out=left, entries=n)
    if fmt == "ncmec-xml":
        counter = _Counting(records)
        entries = write_ncmec_xml(counter, stream)
        return ExportResult(format=fmt, records=counter.n, left_out=0, entries=entries)
    raise SafeholdError("export.unknown_format", f"unknown bank file format {fmt!r}; use one of {', '.join(FORMATS)}")


class _Counting:
    def __init__(self, records: Iterable[EntryRecord]):
        self._records = records
        self.n = 0

    def __iter__(self):
        for r in self._records:
            self.n += 1
            yield r
