"""Create, verify and restore backups (``safehold backup …``); see :mod:`safehold.backup` for what is kept.

**Create** records ``backup.create`` on the audit log first, so the copy holds its own record and the manifest
names it (``audit_anchor``: its seq and hash); then copies the database, then the sealed files. Sealed files are
written once and never changed, and always before the rows that name them, so every file the database copy needs
exists when the files are copied: one purged in between is not needed by anything newer, and is left out.

**Restore** checks everything it can before writing anything — the archive's structure, the schema revision (a
newer one than this code knows is refused), an empty target home and database, the keys at hand — then copies the
files (hashing each against the manifest) into a staging folder inside the new home, puts the database back and
moves the files into place. A failure removes what it wrote. It then proves the result on the restored store's own
services: the audit chain verifies and contains the anchor, and every live evidence item opens and matches its
recorded hashes; the outcome is recorded as ``backup.restore`` on the restored log.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from safehold import __version__
from safehold.backup import archive, database
from safehold.backup.archive import OnProgress, no_progress, open_archive
from safehold.config import Settings
from safehold.errors import SafeholdError
from safehold.home import create_home, unique_suffix
from safehold.store import migrate
from safehold.store.db import Database

if TYPE_CHECKING:
    from safehold.services import Services

SEALED = ("vault", "evidence")
KEYS = {"instance": "keys/instance.key", "evidence": "keys/evidence.key"}
ACTOR = "cli"


def key_files(settings: Settings) -> dict[str, Path]:
    """The key files this store reads (member name → path): none for a key given in the environment or a KMS.
    With them the key ring's files (store/keyring.py): previous keys, still needed for what they sealed until a
    rotation has re-wrapped it, and the derivation secret that file names hang on."""
    used = {}
    if not settings.instance_key:
        used[KEYS["instance"]] = settings.key_file
    if not settings.evidence_key and not settings.evidence_kms:
        used[KEYS["evidence"]] = settings.evidence_key_file
    for kind in KEYS:
        keys = settings.home / "keys"
        used[f"keys/{kind}.derive"] = keys / f"{kind}.derive"
        previous = keys / f"{kind}.previous"
        if previous.is_dir():
            used |= {f"keys/{kind}.previous/{p.name}": p for p in sorted(previous.glob("*.key"))}
    return {name: p for name, p in used.items() if archive.MEMBER_NAME.fullmatch(name) and p.is_file()}


def _sealed_files(home: Path) -> list[tuple[str, Path]]:
    """Every sealed file as (member name, path), leaving out what is not one (a temporary file a crashed write
    left behind, anything an operator put there)."""
    out = []
    for top in SEALED:
        root = home / top
        if not root.is_dir():
            continue
        for shard in sorted(root.iterdir()):
            if shard.is_dir() and not shard.is_symlink():
                out += [(f"{top}/{shard.name}/{p.name}", p) for p in sorted(shard.iterdir())]
    return [(name, p) for name, p in out if archive.MEMBER_NAME.fullmatch(name) and p.is_file() and not p.is_symlink()]


def create(
    svc: Services,
    path: Path,
    *,
    keys_out: Path | None = None,
    include_keys: bool = False,
    on_progress: OnProgress = no_progress,
) -> dict:
    """Write a backup of ``svc``'s store to ``path`` (and its keys to ``keys_out``); returns the manifest."""
    settings = svc.settings
    if keys_out is not None and include_keys:
        raise SafeholdError("backup.invalid_options", "Use --keys-out or --include-keys, not both.")
    for target in (path, keys_out):
        if target is not None and target.exists():
            raise SafeholdError("backup.exists", f"{target} already exists: choose a new name.")
        if target is not None and not target.parent.is_dir():
            raise SafeholdError("backup.write_failed", f"Cannot write {target}: no folder {target.parent}.")
    if keys_out is not None and keys_out.resolve() == path.resolve():
        raise SafeholdError("backup.invalid_options", "The keys file must not be the backup file.")
    if keys_out is not None or include_keys:
        svc.sealer, svc.evidence_store  # noqa: B018 - a key file is made on first use: make both now
    keys = key_files(settings)
    if (keys_out is not None or include_keys) and not keys:
        raise SafeholdError(
            "backup.no_key_files",
            "This store reads its keys from the environment or a KMS, not from key files: back them up where "
            "they are kept.",
        )
    url = svc.db.url
    engine = database.engine_of(url)
    keys_mode = "included" if include_keys else "separate" if keys_out is not None else "not included"
    anchor = svc.audit.record(None, ACTOR, "backup.create", "backup", {"file": path.name, "keys": keys_mode})
    manifest = {
        "kind": "store",
        "safehold_version": __version__,
        "schema_revision": migrate.current_revision(svc.db),
        "engine": engine,
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "audit_anchor": {"seq": anchor["seq"], "hash": anchor["hash"]},
        "keys": keys_mode,
    }
    counts = {"database_bytes": 0, "vault_files": 0, "evidence_files": 0, "key_files": 0}
    try:
        scratch = tempfile.TemporaryDirectory(prefix=".backup-", dir=path.parent)  # beside the archive: its disk
    except OSError as exc:
        raise SafeholdError("backup.write_failed", f"Cannot write in {path.parent}: {exc.strerror}.") from None
    with scratch:
        dump = Path(scratch.name) / "database"
        on_progress("database", 0, None)
        database.dump(url, dump)
        counts["database_bytes"] = dump.stat().st_size
        files = _sealed_files(settings.home)
        # The manifest is serialised when the archive is finished: ``counts`` is filled in on the way.
        with archive.writing(path, manifest | {"counts": counts}) as w:
            w.add(database.MEMBERS[engine], dump)
            for i, (name, p) in enumerate(files, 1):
                if w.add(name, p) is not None:
                    counts[f"{name.split('/', 1)[0]}_files"] += 1
                on_progress("sealed files", i, len(files))
            if include_keys:
                _add_keys(w, keys, counts)
        if keys_out is not None:
            with archive.writing(keys_out, {"kind": "keys", "created_at": manifest["created_at"]}) as w:
                _add_keys(w, keys, {"key_files": 0})
    return manifest | {"counts": counts}


def _add_keys(w: archive.Writer, keys: dict[str, Path], counts: dict) -> None:
    for name, p in keys.items():
        if w.add(name, p) is None:
            raise SafeholdError("backup.no_key_files", f"The key file {p} vanished while the backup was written.")
        counts["key_files"] += 1


def verify(path: Path, on_progress: OnProgress = no_progress) -> dict:
    """Check an archive (a backup or a keys file) against its manifest without restoring it; returns the
    manifest without its file list, plus ``files`` and ``bytes`` checked."""
    a = open_archive(path)
    try:
        a.check(on_progress)
        return _summary(a)
    finally:
        a.close()


def _summary(a: archive.Archive) -> dict:
    return {k: v for k, v in a.manifest.items() if k != "files"} | {"files": len(a.expected), "bytes": a.data_bytes}


# ------------------------------------------------------------------------------------------------- restore


def restore(path: Path, settings: Settings, *, keys: Path | None = None, on_progress: OnProgress = no_progress) -> dict:
    """Restore the backup at ``path`` into ``settings``' home and database (both empty), then check it.

    Returns ``{"ok", "archive", "restored", "upgraded_from", "audit", "anchor_found", "evidence"}``; ``ok`` is
    False when a check failed (the restored store is left in place for inspection)."""
    with ExitStack() as stack:
        a = open_archive(path, kind="store")
        stack.callback(a.close)
        k = None
        if keys is not None:
            k = open_archive(keys, kind="keys")
            stack.callback(k.close)
        url = settings.effective_database_url
        _preflight(a, k, settings, url)
        _write(a, k, settings, url, on_progress)
    return _check(a.manifest, settings) | {"archive": _summary(a)}


def _preflight(a: archive.Archive, k: archive.Archive | None, settings: Settings, url: str) -> None:
    m = a.manifest
    revision, head = m.get("schema_revision"), migrate.head_revision()
    if not isinstance(revision, str) or revision > head:
        raise SafeholdError(
            "backup.newer_schema",
            f"This backup's schema is at revision {revision!r}; this Safehold knows up to {head}: upgrade it first.",
        )
    home = settings.home
    if home.exists() and (not home.is_dir() or any(home.iterdir())):
        raise SafeholdError("backup.target_not_empty", f"{home} is not empty: restore into a new, empty home.")
    engine = database.engine_of(url)
    if m.get("engine") != engine:
        raise SafeholdError(
            "backup.engine_mismatch",
            f"This backup is of a {m.get('engine')} database; the target is {engine}. Restore into the same engine.",
        )
    database.require_empty(url)
    _require_keys(a, k, settings)
    need = a.data_bytes + (k.data_bytes if k else 0)
    free = shutil.disk_usage(_existing_parent(home)).free
    if need > free:
        raise SafeholdError("backup.no_space", f"The restore needs {need} bytes; {home} has {free} free.")


def _require_keys(a: archive.Archive, k: archive.Archive | None, settings: Settings) -> None:
    """Both keys must be at hand before anything is written: a store started without its keys would make new
    ones, and none of the restored sealed files would open."""
    held = set(a.names("keys/")) | set(k.names("keys/") if k else ())
    given = {"instance": bool(settings.instance_key), "evidence": bool(settings.evidence_key or settings.evidence_kms)}
    missing = [kind for kind, member in KEYS.items() if member not in held and not given[kind]]
    if missing:
        raise SafeholdError(
            "backup.keys_missing",
            f"No {' or '.join(missing)} key for the restored store: pass the keys file written with "
            "`backup create --keys-out` as --keys, or set SAFEHOLD_INSTANCE_KEY / SAFEHOLD_EVIDENCE_KEY.",
        )


def _existing_parent(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path


def _write(a: archive.Archive, k: archive.Archive | None, settings: Settings, url: str, on_progress) -> None:
    home = settings.home
    created = not home.exists()
    create_home(home)
    staging = home / f".restore-{unique_suffix()}"
    total, done = a.data_bytes + (k.data_bytes if k else 0), 0

    def step(n: int) -> None:
        nonlocal done
        done += n
        on_progress("restore", done, total)

    try:
        staging.mkdir(mode=0o700)
        a.extract(a.names(), staging, step)
        if k is not None:
            a_keys = set(a.names("keys/"))
            k.extract([n for n in k.names("keys/") if n not in a_keys], staging, step)
        for top in (*SEALED, "keys"):
            if (staging / top).is_dir():
                (staging / top).rename(home / top)
        on_progress("database", 0, None)
        database.restore(staging / database.MEMBERS[database.engine_of(url)], url)
        os.sync()  # once for every file written: a restore reported done is on disk
    except BaseException:
        if created:
            shutil.rmtree(home, ignore_errors=True)
        else:
            for child in home.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check(manifest: dict, settings: Settings) -> dict:
    """The restored store's own services: audit chain, the backup's anchor in it, every evidence item."""
    from safehold.services import Services

    db = Database(settings.effective_database_url)
    try:
        revision = migrate.current_revision(db)
    finally:
        db.dispose()
    svc = Services(settings, load_index=False, create=False, lazy=True)  # migrates an older schema to head
    try:
        chain = svc.audit.verify()
        anchor = manifest["audit_anchor"]
        at = svc.audit.list(limit=1, after_seq=anchor["seq"] - 1)
        anchor_found = bool(at) and at[0]["seq"] == anchor["seq"] and at[0]["hash"] == anchor["hash"]
        evidence = svc.evidence.check_stored()
        ok = chain.ok and anchor_found and evidence["corrupt"] == 0
        result = {
            "ok": ok,
            "restored": {"home": str(settings.home), "schema_revision": migrate.head_revision()},
            "upgraded_from": revision if revision != migrate.head_revision() else None,
            "audit": chain.to_dict(),
            "anchor_found": anchor_found,
            "evidence": evidence,
        }
        detail = {"created_at": manifest["created_at"], "ok": ok, "audit_ok": chain.ok, "anchor_found": anchor_found}
        svc.audit.record(None, ACTOR, "backup.restore", "backup", detail | {"evidence": evidence})
        return result
    finally:
        svc.close()
