"""The law-enforcement package: one zip with the files, a manifest of their hashes and the records, plus a
checksum file next to it.

Layout::

    files/<sha256>-<name>       each distinct file once (decrypted, as preserved)
    case.json                   the case records (a list: a report bundles several cases)
    report.json, report.xml     the report and, if one was filed, the document as filed
    <name>.json                 any extra record (e.g. an authority's structured submission)
    manifest.json               written last: every file's and record's SHA-256 (and MD5, size, preservation
                                date for files), who made the package, when and why
    <package>.zip.sha256        next to the zip, in ``sha256sum`` format, so ``sha256sum -c`` checks it

The zip is written to a temporary name and renamed when complete, so a half-written package never carries the
final name; both files are created 0600 (the package holds decrypted evidence). This module knows nothing of
the database: :class:`~safehold.evidence.service.EvidenceService` gathers the content and records the export.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from safehold.errors import SafeholdError

FORMAT = "safehold.evidence-package.v1"
RESERVED = frozenset({"manifest", "case", "report"})
_RECORD_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
#: Already-compressed media gains nothing from deflate; records do.
_STORED_KINDS = frozenset({"media"})


@dataclass
class PackageFile:
    """One file of the package. ``load`` returns its verified bytes (called once, while writing)."""

    sha256: str
    md5: str
    size: int
    kind: str
    filename: str | None
    load: Callable[[], bytes]
    entry: dict = field(default_factory=dict)  # extra manifest fields: evidence ids, cases, preserved_at, …

    @property
    def name(self) -> str:
        return f"files/{self.sha256}-{safe_name(self.filename, self.kind)}"


def safe_name(filename: str | None, kind: str) -> str:
    """A file name fit for any file system: the original's last path part, odd characters replaced."""
    base = _UNSAFE.sub("_", (filename or "").replace("\\", "/").rsplit("/", 1)[-1]).strip("._")[:100]
    return base or {"text": "text.txt", "document": "document.xml"}.get(kind, "file.bin")


def check_record_name(name: str) -> str:
    if not _RECORD_NAME.fullmatch(name) or name in RESERVED:
        raise SafeholdError(
            "evidence.invalid_record",
            f"Record name {name!r} must be 1–64 lower-case letters, digits, '-' or '_', and not one of "
            f"{', '.join(sorted(RESERVED))}.",
        )
    return name


def write_package(
    dest_dir: Path,
    stem: str,
    *,
    files: list[PackageFile],
    records: dict[str, object],
    documents: dict[str, bytes],
    manifest: dict,
) -> dict:
    """Write ``<dest_dir>/<stem>-<random>.zip`` and its ``.sha256``. ``records`` become ``<name>.json``,
    ``documents`` are written as named (``report.xml``); ``manifest`` gets ``files`` and ``records`` added.
    Returns ``{"path", "sha256", "files", "bytes"}`` (``bytes``: the zip's size)."""
    dest_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    name = f"{stem}-{secrets.token_hex(3)}.zip"
    path, tmp = dest_dir / name, dest_dir / f".tmp-{name}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as z:
            listed = [_write_file(z, f) for f in _distinct(files)]
            written = [_write(z, f"{n}.json", _json(v)) for n, v in records.items()]
            written += [_write(z, n, data) for n, data in documents.items()]
            body = {**manifest, "format": FORMAT, "files": listed, "records": written}
            z.writestr("manifest.json", _json(body))
            z.close()
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    digest = _sha256_file(path)
    checksum = path.with_name(path.name + ".sha256")
    fd = os.open(checksum, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"{digest}  {path.name}\n")
    return {"path": str(path), "sha256": digest, "files": len(listed), "bytes": path.stat().st_size}


def _distinct(files: list[PackageFile]) -> list[PackageFile]:
    """One copy of each content; the manifest entry of the first lists every record that preserved it."""
    seen: dict[str, PackageFile] = {}
    for f in files:
        first = seen.setdefault(f.sha256, f)
        if first is not f:
            for key in ("evidence_ids", "case_ids", "source_keys"):
                merged = first.entry.get(key, []) + [
                    v for v in f.entry.get(key, []) if v not in first.entry.get(key, [])
                ]
                first.entry[key] = merged
    return list(seen.values())


def _write_file(z: zipfile.ZipFile, f: PackageFile) -> dict:
    data = f.load()
    compress = zipfile.ZIP_STORED if f.kind in _STORED_KINDS else zipfile.ZIP_DEFLATED
    z.writestr(f.name, data, compress_type=compress)
    return {
        "name": f.name,
        "sha256": f.sha256,
        "md5": f.md5,
        "size": f.size,
        "kind": f.kind,
        "original_filename": f.filename,
        **f.entry,
    }


def _write(z: zipfile.ZipFile, name: str, data: bytes) -> dict:
    z.writestr(name, data)
    return {"name": name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def _json(value: object) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
