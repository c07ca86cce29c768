"""``safehold keys status | rotate | retire``: find, re-wrap and count everything a KEK seals.

Where sealed values live (each re-wrapped in place, the content never re-encrypted: only the data key wrapped at
the front of a blob changes, see store/sealing.py):

- instance key: users' TOTP secrets (confirmed and pending), webhook signing secrets, exchange and screening
  service credentials, screening jobs' queued media, and the media vault's files;
- evidence key: the evidence store's files.

Rows are read in bounded batches (by primary key, so a re-run resumes where rows are still old) and each is
written back in its own small transaction, only if it has not changed meanwhile (compare and swap): a server
writing at the same time is never overwritten and never blocked for more than one row. Files are written to a
temporary name, fsynced and renamed over the old one, and only if the old one is still there (a file the
retention sweep deleted meanwhile is not brought back). Readers accept every key in the ring throughout.
"""

from __future__ import annotations

import base64
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update

from safehold.actions.webhooks import SECRET_AAD
from safehold.auth.users import TOTP_AAD
from safehold.errors import Conflict, NotFound, SafeholdError
from safehold.evidence.store import AAD as EVIDENCE_AAD
from safehold.screening.service import MEDIA_AAD
from safehold.store.keyring import KEY_ID_RE, Keyring, install_new_key, pin_derive, read_marker
from safehold.store.models import ExchangeRow, ScreeningJob, ScreeningServiceRow, User, Webhook
from safehold.store.sealing import MAX_HEAD, Sealer, parse_head, read_head
from safehold.store.vault import AAD as VAULT_AAD

if TYPE_CHECKING:
    from safehold.services import Services

KINDS = ("instance", "evidence")
MAX_BATCH = 10_000
COPY_CHUNK = 1 << 20
UNKNOWN = "unknown"  # a blob that names no key of the ring and that none of them opens

OnProgress = Callable[[str, int, int], None]  # (target name, done, total)


def no_progress(name: str, done: int, total: int) -> None:
    """The default: report nothing."""


@dataclass(frozen=True)
class Column:
    """A sealed column: text columns hold base64 (``Sealer.seal_text``), binary ones the blob itself.
    ``aad_from_name``: the row's ``name`` is the associated data (credentials bound to their owner)."""

    name: str
    model: Any
    column: str
    aad: bytes = b""
    aad_from_name: bool = False

    def _aad(self, row) -> bytes:
        return row.name.encode() if self.aad_from_name else self.aad

    def count(self, svc: Services) -> int:
        col = getattr(self.model, self.column)
        with svc.db.session() as s:
            return s.scalar(select(func.count()).select_from(self.model).where(col.is_not(None))) or 0

    def items(self, svc: Services, batch: int) -> Iterator[tuple[Any, bytes, bytes, Any]]:
        """(primary key, header, aad, the whole stored value if it is short) of every sealed value, ``batch`` rows
        per query in primary-key order. Only the start of a long value is read (queued media can be large)."""
        pk, col = self.model.id, getattr(self.model, self.column)
        cols = [pk, func.substr(col, 1, HEAD_CHARS), func.length(col)]
        cols += [self.model.name] if self.aad_from_name else []
        last = None
        while True:
            q = select(*cols).where(col.is_not(None)).order_by(pk).limit(batch)
            with svc.db.session() as s:
                rows = s.execute(q if last is None else q.where(pk > last)).all()
            for row in rows:
                yield row[0], _blob(row[1]), self._aad(row), (row[1] if row[2] <= HEAD_CHARS else None)
            if len(rows) < batch:
                return
            last = rows[-1][0]

    def rewrap(self, svc: Services, sealer: Sealer, item: tuple[Any, bytes, bytes, Any]) -> bool:
        """Re-wrap one row in its own transaction, written back only if no one changed it meanwhile (a long value
        is read whole here, one at a time)."""
        key, _, aad, old = item
        col = getattr(self.model, self.column)
        with svc.db.session() as s:
            if old is None:
                old = s.scalar(select(col).where(self.model.id == key))
                if old is None:
                    return False
            blob = _blob(old)
            done = sealer.rewrap(blob[:MAX_HEAD], aad)
            if done is None:
                return False
            new = done[0] + blob[done[1] :]
            value = base64.b64encode(new).decode() if isinstance(old, str) else new
            changed = s.execute(update(self.model).where(self.model.id == key, col == old).values({col: value}))
            return changed.rowcount == 1


#: What is read of a sealed column to learn its key: 4,096 base64 characters (3,072 bytes) or bytes, far more than
#: a local key's header (13 + 60 bytes); a multiple of 4, so a text column's prefix decodes on its own.
HEAD_CHARS = 4096


def _blob(value: str | bytes) -> bytes:
    return base64.b64decode(value) if isinstance(value, str) else bytes(value)


@dataclass(frozen=True)
class Folder:
    """A folder of sealed files in two-character shards (the media vault, the evidence store)."""

    name: str
    root: Path
    aad: bytes

    def _files(self) -> Iterator[Path]:
        if not self.root.is_dir():
            return
        for shard in sorted(self.root.iterdir()):
            if shard.is_dir() and not shard.is_symlink():
                yield from sorted(p for p in shard.iterdir() if not p.name.startswith(".") and p.is_file())

    def count(self, svc: Services) -> int:
        return sum(1 for _ in self._files())

    def items(self, svc: Services, batch: int) -> Iterator[tuple[Path, bytes, bytes]]:
        for path in self._files():
            try:
                with path.open("rb") as f:
                    head = read_head(f)
            except FileNotFoundError:  # deleted since it was listed
                continue
            yield path, head, self.aad

    def rewrap(self, svc: Services, sealer: Sealer, item: tuple[Path, bytes, bytes]) -> bool:
        path, _, aad = item
        try:
            f = path.open("rb")
        except FileNotFoundError:
            return False
        with f:
            head = read_head(f)  # read again: the header the new one replaces must be the file's own
            done = sealer.rewrap(head, aad)
            if done is None:
                return False
            new_head, old_len = done
            ino = os.fstat(f.fileno()).st_ino
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(new_head)
                    out.write(head[old_len:])
                    while chunk := f.read(COPY_CHUNK):  # the ciphertext, copied as it is
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                if _inode(path) != ino:  # deleted (or replaced) meanwhile: leave it so
                    os.unlink(tmp)
                    return False
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return True


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


Target = Column | Folder


def targets(svc: Services, which: str) -> tuple[Sealer, list[Target]]:
    """The sealer (over its key ring) and every place holding values sealed by the ``which`` key."""
    if which == "instance":
        return svc.sealer, [
            Column("users.totp_secret", User, "totp_secret", TOTP_AAD),
            Column("users.totp_pending", User, "totp_pending", TOTP_AAD),
            Column("webhooks.secret", Webhook, "secret_encrypted", SECRET_AAD),
            Column("exchanges.credentials", ExchangeRow, "credentials", aad_from_name=True),
            Column("screening_services.credentials", ScreeningServiceRow, "credentials", aad_from_name=True),
            Column("screening_jobs.media", ScreeningJob, "media", MEDIA_AAD),
            Folder("vault", svc.settings.vault_dir, VAULT_AAD),
        ]
    if which == "evidence":
        return svc.evidence_store.sealer, [Folder("evidence", svc.settings.evidence_dir, EVIDENCE_AAD)]
    raise SafeholdError("keys.invalid_kind", f"--which must be one of {', '.join(KINDS)}.")


def _ring(sealer: Sealer, which: str) -> Keyring:
    """The sealer's key ring, read afresh: what another process rotated a moment ago counts."""
    if not isinstance(sealer.keys, Keyring):
        raise SafeholdError(
            "keys.kms", f"The {which} key is held by a KMS plug-in: rotate it in the KMS (it re-wraps on its own)."
        )
    sealer.keys.reload()
    return sealer.keys


def _label(ring: Keyring, blob: bytes, aad: bytes) -> str:
    """The id of the key that sealed ``blob``: named in it, or (a blob from before key ids) found by trying."""
    try:
        kid, wrapped, _ = parse_head(blob)
    except SafeholdError:
        return UNKNOWN
    if kid is None:
        kid = ring.which(wrapped, aad)
    return kid.hex() if kid is not None else UNKNOWN


def count_sealed(svc: Services, which: str, batch: int = 500) -> dict[str, int]:
    """How many values each key id seals (``unknown``: none of the ring's keys opens them)."""
    sealer, places = targets(svc, which)
    ring = _ring(sealer, which)
    counts: Counter[str] = Counter()
    for place in places:
        for item in place.items(svc, batch):
            counts[_label(ring, item[1][:MAX_HEAD], item[2])] += 1
    return dict(counts)


def status(svc: Services, which: str) -> dict:
    sealer, _ = targets(svc, which)
    ring = _ring(sealer, which)
    env_ids = ring.env_previous_ids()
    return {
        "which": which,
        "source": "environment" if ring.source.env_value else "file",
        "current": ring.current_id.hex(),
        "previous": [k.hex() for k in ring.previous_ids()],
        "previous_from_environment": sorted(k.hex() for k in env_ids),
        "rotation_unfinished": read_marker(ring.source) is not None,
        "sealed": count_sealed(svc, which),
    }


def _check_batch(batch: int) -> None:
    if not 1 <= batch <= MAX_BATCH:
        raise SafeholdError("keys.invalid_batch", f"The batch size must be 1-{MAX_BATCH}.")


def rotate(
    svc: Services,
    which: str,
    *,
    new_key: bool = True,
    batch: int = 200,
    actor: str = "cli",
    on_progress: OnProgress = no_progress,
) -> dict:
    """Make a new ``which`` key current (unless ``new_key`` is false, or the key is given by environment, or an
    unfinished rotation is resumed), wait until every process has seen it, then re-wrap everything still under
    another key. Idempotent: a re-run after a crash finishes the same rotation."""
    _check_batch(batch)
    sealer, places = targets(svc, which)
    ring = _ring(sealer, which)
    source = ring.source
    started = time.monotonic()
    pin_derive(ring)  # before any key can go: file names and signing keys stay what they are
    resumed = read_marker(source) == ring.current_id
    installed = None
    if new_key and not resumed and not source.env_value:
        old = ring.current_id
        installed = install_new_key(ring)
        svc.audit.record(None, actor, "keys.rotate", which, {"from": old.hex(), "to": installed.hex()})
    if installed is not None or resumed:
        time.sleep(svc.settings.key_check_seconds)  # every running process now wraps with the new key
    current = ring.current_id
    totals = {p.name: p.count(svc) for p in places}
    outcome: dict[str, Counter[str]] = {p.name: Counter() for p in places}
    for place in places:
        done = 0
        on_progress(place.name, 0, totals[place.name])
        for item in place.items(svc, batch):
            outcome[place.name][_rewrap_one(svc, sealer, place, item)] += 1
            done += 1
            on_progress(place.name, done, max(done, totals[place.name]))
    source.marker_file.unlink(missing_ok=True)
    seconds = time.monotonic() - started
    result = {
        "which": which,
        "key_id": current.hex(),
        "new_key": installed is not None,
        "resumed": resumed,
        **{k: sum(c[k] for c in outcome.values()) for k in OUTCOMES},
        "by_place": {name: {k: c[k] for k in OUTCOMES} for name, c in outcome.items()},
        "seconds": round(seconds, 3),
    }
    svc.audit.record(None, actor, "keys.rewrap", which, {k: result[k] for k in ("key_id", "resumed", *OUTCOMES)})
    return result


#: What became of each value: re-wrapped, already under the current key (or changed meanwhile), or unreadable.
OUTCOMES = ("rewrapped", "unchanged", "unreadable")


def _rewrap_one(svc: Services, sealer: Sealer, place: Target, item) -> str:
    """One value's outcome. A damaged value, or one no key of the ring opens, is counted and passed over: it must
    not stop the rest from moving to the new key (``keys status`` lists it as ``unknown``)."""
    try:
        return "rewrapped" if place.rewrap(svc, sealer, item) else "unchanged"
    except SafeholdError as exc:
        if exc.code in ("keys.corrupt", "keys.wrong_key", "keys.unknown_key"):
            return "unreadable"
        raise


def retire(svc: Services, which: str, key_id: str, *, actor: str = "cli") -> dict:
    """Delete the previous key ``key_id`` once nothing is sealed by it any more."""
    if not KEY_ID_RE.fullmatch(key_id):
        raise SafeholdError("keys.invalid_id", "A key id is 16 lower-case hex characters (see `safehold keys status`).")
    sealer, _ = targets(svc, which)
    ring = _ring(sealer, which)
    kid = bytes.fromhex(key_id)
    if kid == ring.current_id:
        raise Conflict("keys.retire_current", f"{key_id} is the current {which} key; rotate first.")
    if kid not in ring.previous_ids():
        raise NotFound("keys.not_found", f"No previous {which} key {key_id}.")
    if kid in ring.env_previous_ids():
        raise SafeholdError(
            "keys.env_given", f"{key_id} comes from {ring.source.env_name}_PREVIOUS: remove it there (and restart)."
        )
    if read_marker(ring.source) is not None:
        raise Conflict("keys.rotation_unfinished", f"A {which} rotation is unfinished: run `safehold keys rotate`.")
    still = count_sealed(svc, which).get(key_id, 0)
    if still:
        raise Conflict(
            "keys.in_use",
            f"{still} values are still sealed by {which} key {key_id}: run `safehold keys rotate --which {which} "
            "--rewrap-only` first.",
            detail={"sealed": still},
        )
    pin_derive(ring)  # file names and signing keys must not change with the key set
    (ring.source.previous_dir / f"{key_id}.key").unlink()
    ring.reload(force=True)
    svc.audit.record(None, actor, "keys.retire", which, {"key_id": key_id})
    return {"which": which, "retired": key_id, "previous": [k.hex() for k in ring.previous_ids()]}
