"""Plain hash lists: one hash per line, ``#`` comments and blank lines ignored.

The signal type comes from a ``# signal_type: NAME`` directive line (applies to the lines after it; the writer
emits one whenever the type changes), else from the caller's ``default_signal_type``, else from the value's
length (32 hex digits → ``md5``, 40 → ``sha1``; 64 is ambiguous between ``sha256`` and ``pdq`` → issue
``import.ambiguous_signal_type``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from safehold.errors import SafeholdError

from ._common import (
    LINE_BAD_ENCODING,
    LINE_TOO_LONG,
    Codes,
    Collector,
    EntryRecord,
    Normalizer,
    apply_normalize,
    physical_lines,
    short,
    text_writer,
    valid_signal_type_name,
)

_DIRECTIVE = re.compile(r"#\s*signal[_-]type\s*[:=]\s*(\S+)\s*\Z", re.IGNORECASE)
_HEX = re.compile(r"[0-9a-fA-F]+\Z")
_INFER = {32: "md5", 40: "sha1"}
_AMBIGUOUS = {64: ("sha256", "pdq")}
HEADER_COMMENT = "# Safehold hash list (one value per line)"


def read_list(
    bstream,
    *,
    normalize: Normalizer,
    default_signal_type: str | None,
    source: str | None,
    col: Collector,
) -> Iterator[EntryRecord]:
    directive: str | None = None
    for lineno, text, status in physical_lines(bstream, col):
        if status == LINE_TOO_LONG:
            col.counts.rows += 1
            col.issue(lineno, Codes.LINE_TOO_LONG, "line is longer than the limit")
            continue
        s = text.strip()
        if not s:
            continue
        if s.startswith("#"):
            m = _DIRECTIVE.match(s)
            if m:
                directive = m.group(1).lower()
            continue
        col.counts.rows += 1
        if status == LINE_BAD_ENCODING:
            col.issue(lineno, Codes.ENCODING, "line is not valid UTF-8")
            continue
        signal_type = directive or (default_signal_type.lower() if default_signal_type else None)
        if signal_type is None:
            signal_type = _infer(s, lineno, col)
            if signal_type is None:
                continue
        value = apply_normalize(normalize, signal_type, s, lineno, col)
        if value is None:
            continue
        col.counts.records += 1
        yield EntryRecord(signal_type=signal_type, value=value, source=source)


def _infer(value: str, line: int, col: Collector) -> str | None:
    if _HEX.match(value):
        n = len(value)
        if n in _INFER:
            return _INFER[n]
        if n in _AMBIGUOUS:
            a, b = _AMBIGUOUS[n]
            col.issue(
                line,
                Codes.AMBIGUOUS_SIGNAL_TYPE,
                f"{n} hex digits could be {a} or {b}: pass default_signal_type or add a '# signal_type: …' line",
            )
            return None
    col.issue(
        line,
        Codes.UNKNOWN_SIGNAL_TYPE,
        f"cannot tell the signal type of {short(value)}: pass default_signal_type or add a '# signal_type: …' line",
    )
    return None


def write_list(records: Iterable[EntryRecord], stream) -> tuple[int, int]:
    """Write enabled, non-tombstone records as a hash list; return ``(written, left_out)``.

    Only ``signal_type`` and ``value`` survive; disabled records and tombstones are left out (a plain list
    has no way to say "withdrawn", and another tool reading it would match them).
    """
    out, finish = text_writer(stream)
    written = left_out = 0
    current: str | None = None
    try:
        out.write(HEADER_COMMENT + "\n")
        for rec in records:
            if not rec.enabled or rec.is_tombstone:
                left_out += 1
                continue
            st, v = rec.signal_type, rec.value
            if not valid_signal_type_name(st):
                raise SafeholdError("export.invalid_signal_type", f"cannot export signal type {short(st)}")
            if not v or v.startswith("#") or any(c.isspace() for c in v):
                raise SafeholdError("export.invalid_value", f"value {short(v)} cannot be written to a hash list")
            if st != current:
                out.write(f"# signal_type: {st}\n")
                current = st
            out.write(v + "\n")
            written += 1
        return written, left_out
    finally:
        finish()
