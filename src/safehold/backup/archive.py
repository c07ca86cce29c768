"""The backup file: an uncompressed tar of named members and, last, ``manifest.json`` listing each with its size
and SHA-256.

Uncompressed because the sealed files are encrypted (they do not compress) and a SQLite copy or a ``pg_dump -Fc``
file is the only large member; and because an uncompressed tar can be listed by seeking from header to header,
so the manifest (written last, once every checksum is known) is found and checked before any data is read.

**Writing** is atomic: the archive grows under a hidden temporary name beside its final one, owner-only, and is
renamed into place only when whole (fsync first); any failure removes it, so a file under the final name is always
a complete backup.

**Reading** trusts nothing in the file. Every member must be a regular file whose name is one the writer produces
(:data:`MEMBER_NAME`: no ``..``, no absolute path, no link, device or folder can match it), listed once in the
manifest with the same size, and its bytes must hash to the manifest's SHA-256. Extraction never uses tarfile's
own extraction: each member is copied, while being hashed, to a path built here from the checked name, created
exclusively (never following a link), under the destination folder.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from safehold.errors import SafeholdError
from safehold.home import private_opener, unique_suffix

FORMAT = "safehold-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
#: What a member may be called: the manifest, the database copy, a sealed file (``<shard>/<HMAC name>``, the
#: layout of :class:`~safehold.store.vault.MediaVault`) or a key file. Nothing else is ever written or accepted.
MEMBER_NAME = re.compile(
    r"(?:manifest\.json|database/safehold\.(?:db|pgdump)|(?:vault|evidence)/[0-9a-f]{2}/[0-9a-f]{64}"
    r"|keys/(?:instance|evidence)\.(?:key|derive)|keys/(?:instance|evidence)\.previous/[0-9a-f]{16}\.key)"
)
SHA256 = re.compile(r"[0-9a-f]{64}")
#: Bounds on what is read before any data: the manifest's size (about 1.5 million files) and the member count.
MAX_MANIFEST_BYTES = 256 * 1024 * 1024
MAX_MEMBERS = 2_000_000
CHUNK = 1024 * 1024

#: ``(step, done, total)``: how far a long step is (bytes or files; ``total`` None when unknown).
OnProgress = Callable[[str, int, int | None], None]


def no_progress(step: str, done: int, total: int | None) -> None:
    """The default progress callback: report nothing."""


def invalid(message: str) -> SafeholdError:
    return SafeholdError("backup.invalid_archive", message)


@dataclass
class Entry:
    path: str
    size: int
    sha256: str

    def to_dict(self) -> dict:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}


class _Hashing:
    """A file object read by tarfile while the SHA-256 of what it reads is computed and progress reported."""

    def __init__(self, f: BinaryIO, on_bytes: Callable[[int], None]):
        self.f = f
        self.hash = hashlib.sha256()
        self.on_bytes = on_bytes

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.hash.update(data)
        self.on_bytes(len(data))
        return data


@dataclass
class Writer:
    """Adds members to an archive being written; :func:`writing` commits or removes it."""

    tar: tarfile.TarFile
    entries: list[Entry] = field(default_factory=list)

    def add(self, name: str, source: Path, on_bytes: Callable[[int], None] = lambda n: None) -> Entry | None:
        """Copy ``source`` in as ``name``, hashing it on the way. None if the file vanished before it was opened
        (a sealed file purged since the database was copied: the copy no longer needs it)."""
        if not MEMBER_NAME.fullmatch(name):
            raise ValueError(f"not a backup member name: {name}")
        try:
            f = open(source, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            return None
        with f:
            info = tarfile.TarInfo(name)
            info.size = os.fstat(f.fileno()).st_size
            info.mode, info.mtime = 0o600, int(time.time())
            reader = _Hashing(f, on_bytes)
            self.tar.addfile(info, reader)  # reads exactly info.size bytes; a shrunk file is an OSError
        entry = Entry(name, info.size, reader.hash.hexdigest())
        self.entries.append(entry)
        return entry

    def _finish(self, manifest: dict) -> None:
        body = json.dumps({**manifest, "files": [e.to_dict() for e in self.entries]}, sort_keys=True).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mode, info.mtime = len(body), 0o600, int(time.time())
        self.tar.addfile(info, io.BytesIO(body))


@contextmanager
def writing(path: Path, manifest: dict) -> Iterator[Writer]:
    """An archive at ``path``, owner-only, that appears whole when the block ends without error, with
    ``manifest`` (plus the list of files added) as its last member, or not at all. An existing file at ``path``
    is refused (``backup.exists``): a backup is never overwritten by accident."""
    if path.exists():
        raise SafeholdError("backup.exists", f"{path} already exists: choose a new name.")
    partial = path.with_name(f".{path.name}.{unique_suffix()}.partial")
    try:
        f = open(partial, "xb", opener=private_opener)  # noqa: SIM115 - closed below
    except OSError as exc:
        raise SafeholdError("backup.write_failed", f"Cannot write {path}: {exc.strerror}.") from None
    try:
        with f, tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar:
            writer = Writer(tar)
            yield writer
            writer._finish({"format": FORMAT, "format_version": FORMAT_VERSION, **manifest})
        with open(partial, "rb") as done:
            os.fsync(done.fileno())
        if path.exists():
            raise SafeholdError("backup.exists", f"{path} appeared while the backup was written: choose a new name.")
        partial.replace(path)
    except OSError as exc:
        raise SafeholdError("backup.write_failed", f"Cannot write {path}: {exc.strerror or exc}.") from None
    finally:
        partial.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------------- reading


@dataclass
class Archive:
    """An archive whose structure was checked (:func:`open_archive`): the manifest, and the members by name."""

    path: Path
    tar: tarfile.TarFile
    manifest: dict
    members: dict[str, tarfile.TarInfo]
    expected: dict[str, Entry]
    file: BinaryIO

    @property
    def data_bytes(self) -> int:
        return sum(e.size for e in self.expected.values())

    def names(self, prefix: str = "") -> list[str]:
        return sorted(n for n in self.expected if n.startswith(prefix))

    def _copy(self, name: str, out: BinaryIO | None, on_bytes: Callable[[int], None]) -> None:
        """Stream one member (to ``out`` if given), and fail unless its bytes match the manifest."""
        entry, src = self.expected[name], self.tar.extractfile(self.members[name])
        digest, n = hashlib.sha256(), 0
        while chunk := src.read(CHUNK):
            n += len(chunk)
            if n > entry.size:
                raise invalid(f"{name} is longer than the manifest says.")
            digest.update(chunk)
            if out is not None:
                out.write(chunk)
            on_bytes(len(chunk))
        if n != entry.size or digest.hexdigest() != entry.sha256:
            raise SafeholdError(
                "backup.checksum_mismatch",
                f"{name} does not match its SHA-256 in the manifest: the archive is damaged.",
            )

    def check(self, on_progress: OnProgress = no_progress) -> None:
        """Hash every member against the manifest without writing anything."""
        total, done = self.data_bytes, 0

        def step(n: int) -> None:
            nonlocal done
            done += n
            on_progress("verify", done, total)

        for name in sorted(self.expected):
            self._copy(name, None, step)

    def extract(self, names: list[str], dest: Path, on_bytes: Callable[[int], None] = lambda n: None) -> None:
        """Copy ``names`` under ``dest`` (checked against the manifest while copied). Each file is created new
        (``O_EXCL``, never following a link), owner-only, its folders 0700. Not synced one by one (an fsync per
        file was three quarters of a restore's time): the caller syncs once when everything is in place."""
        root = dest.resolve()
        for name in names:
            target = root.joinpath(*name.split("/"))
            if root not in target.parents:  # cannot happen for a name MEMBER_NAME matches; kept as a last guard
                raise invalid(f"{name} would be written outside {dest}.")
            for folder in reversed(target.parents[: len(target.relative_to(root).parts) - 1]):
                folder.mkdir(mode=0o700, exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
            with os.fdopen(os.open(target, flags, 0o600), "wb") as out:
                self._copy(name, out, on_bytes)

    def close(self) -> None:
        self.tar.close()
        self.file.close()


def open_archive(path: Path, kind: str | None = None) -> Archive:
    """``path`` opened and its structure checked: every member a regular file with an expected name, listed once
    in a well-formed manifest with the same size, and every manifest entry present. ``kind`` (``store`` or
    ``keys``): refuse the other. Data is not read: :meth:`Archive.check` / :meth:`Archive.extract` hash it."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed with the tar, or below
    except FileNotFoundError:
        raise SafeholdError("backup.not_found", f"No such file: {path}") from None
    except IsADirectoryError:
        raise SafeholdError("backup.not_found", f"{path} is a folder, not a backup file.") from None
    except OSError as exc:
        raise SafeholdError("backup.read_failed", f"Cannot read {path}: {exc.strerror}.") from None
    try:
        tar = tarfile.open(fileobj=_BoundedReads(f), mode="r:")
    except (tarfile.TarError, OSError) as exc:
        f.close()
        raise invalid(f"{path} is not a Safehold backup (not a tar file: {exc}).") from None
    except BaseException:
        f.close()
        raise
    try:
        members = _members(tar)
        manifest = _manifest(tar, members)
        expected = _expected(manifest, members)
        if kind is not None and manifest["kind"] != kind:
            raise invalid(f"{path} holds {manifest['kind']}, not {kind}.")
        return Archive(path, tar, manifest, members, expected, f)
    except BaseException:
        tar.close()
        f.close()
        raise


class _BoundedReads:
    """The archive file as tarfile reads it, refusing any one read larger than a chunk: tarfile reads a pax
    extended header whole, in one read of the size its header claims, so a hostile header claiming gigabytes would
    otherwise be allocated before anything is checked. Every read Safehold itself makes is a chunk at most."""

    def __init__(self, f: BinaryIO):
        self.f = f

    def read(self, n: int = -1) -> bytes:
        if n < 0 or n > CHUNK:
            raise invalid(f"The archive has a header or member of {n} bytes read at once: refused.")
        return self.f.read(n)

    def __getattr__(self, name: str):
        return getattr(self.f, name)


def _members(tar: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    members: dict[str, tarfile.TarInfo] = {}
    try:
        for m in tar:
            if len(members) >= MAX_MEMBERS:
                raise invalid(f"The archive has more than {MAX_MEMBERS} members.")
            if not MEMBER_NAME.fullmatch(m.name):
                raise invalid(f"Unexpected member {m.name[:200]!r}: a backup holds only the store's own files.")
            if not m.isfile() or m.issparse():
                raise invalid(f"{m.name} is not a regular file (a link, folder or device): refused.")
            if m.name in members:
                raise invalid(f"{m.name} appears twice.")
            members[m.name] = m
    except tarfile.TarError as exc:
        raise invalid(f"The archive is damaged: {exc}.") from None
    return members


def _manifest(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo]) -> dict:
    info = members.get(MANIFEST)
    if info is None:
        raise invalid("The archive has no manifest.json: it was not written by `safehold backup create`.")
    if info.size > MAX_MANIFEST_BYTES:
        raise invalid(f"manifest.json is {info.size} bytes, more than the {MAX_MANIFEST_BYTES} allowed.")
    try:
        src = tar.extractfile(info)
        manifest = json.loads(b"".join(iter(lambda: src.read(CHUNK), b"")))
    except (ValueError, tarfile.TarError) as exc:
        raise invalid(f"manifest.json is not valid JSON: {exc}.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise invalid("manifest.json is not a Safehold backup manifest.")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise SafeholdError(
            "backup.unsupported_version",
            f"This backup has format version {manifest.get('format_version')!r}; this Safehold reads {FORMAT_VERSION}.",
        )
    if manifest.get("kind") not in ("store", "keys") or not isinstance(manifest.get("files"), list):
        raise invalid("manifest.json lacks its kind or its list of files.")
    return manifest


def _expected(manifest: dict, members: dict[str, tarfile.TarInfo]) -> dict[str, Entry]:
    expected: dict[str, Entry] = {}
    for f in manifest["files"]:
        if not isinstance(f, dict):
            raise invalid("manifest.json lists a file that is not an object.")
        path, size, sha = f.get("path"), f.get("size"), f.get("sha256")
        if not isinstance(path, str) or path == MANIFEST or not MEMBER_NAME.fullmatch(path) or path in expected:
            raise invalid(f"manifest.json lists an unexpected or repeated file {str(path)[:200]!r}.")
        if type(size) is not int or size < 0 or not isinstance(sha, str) or not SHA256.fullmatch(sha):
            raise invalid(f"manifest.json gives {path} no valid size or SHA-256.")
        if path not in members:
            raise invalid(f"{path} is in the manifest but missing from the archive.")
        if members[path].size != size:
            raise invalid(f"{path} is {members[path].size} bytes in the archive; the manifest says {size}.")
        expected[path] = Entry(path, size, sha)
    extra = sorted(set(members) - set(expected) - {MANIFEST})
    if extra:
        raise invalid(f"{extra[0]} is in the archive but not in its manifest.")
    return expected
