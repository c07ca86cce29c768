"""A key ring: the current key-encryption key plus the previous ones, so a KEK can be rotated without downtime.

Files, beside the key (``<home>/keys/instance.key`` or ``evidence.key``; ``<kind>`` below is ``instance`` or
``evidence``):

- ``<kind>.key``: the current KEK; every new blob is wrapped with it and names its key id (store/sealing.py).
- ``<kind>.previous/<key id>.key``: previous KEKs, still used to open what they wrapped until it is re-wrapped;
  ``SAFEHOLD_<KIND>_KEY_PREVIOUS`` (comma-separated base64) adds more for keys given by environment.
- ``<kind>.derive``: the secret that file names and signing keys are derived from (``derive``). It is the first
  key's and must not change with the KEK (the vault's file names and a peer's signing key hang on it), so the
  first rotation writes it down. Without the file it is the current key's (never rotated) or the only previous
  key's (rotated once by environment); with more than one previous key and no file it is refused.
- ``<kind>.rotating``: a rotation under way (the new key id, no key material), so a re-run finishes it.

A ring re-reads its files when they change, checking their modification times at most every
``SAFEHOLD_KEY_CHECK_SECONDS``: a running server or worker starts wrapping with a rotated key within that time
and opens blobs of every key in the ring all along. A blob naming a key the ring does not hold makes it look
again at once, so a process never fails on a blob another process wrapped with a key it has not seen yet.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag

from safehold.config import Settings
from safehold.errors import SafeholdError
from safehold.store.sealing import KEY_BYTES, LocalKey, decode, write_private

KEY_ID_RE = re.compile(r"[0-9a-f]{16}")
MAX_PREVIOUS = 64  # previous keys held at once: a ring is tried key by key for blobs without a key id


@dataclass(frozen=True)
class KeySource:
    """Where one ring's keys come from. ``env_name`` names the variable in messages (never its value)."""

    kind: str
    key_file: Path
    env_value: str | None = field(default=None, repr=False)  # key material: never in a repr or a log
    env_previous: str | None = field(default=None, repr=False)
    check_seconds: float = 5.0

    @property
    def env_name(self) -> str:
        return f"SAFEHOLD_{self.kind.upper()}_KEY"

    @property
    def previous_dir(self) -> Path:
        return self.key_file.with_name(f"{self.kind}.previous")

    @property
    def derive_file(self) -> Path:
        return self.key_file.with_name(f"{self.kind}.derive")

    @property
    def marker_file(self) -> Path:
        return self.key_file.with_name(f"{self.kind}.rotating")

    def _stamp(self) -> tuple:
        """What changes when any of the ring's files does (modification times, not contents)."""
        out = []
        for path in (self.key_file, self.previous_dir, self.derive_file):
            try:
                st = path.stat()
                out.append((st.st_mtime_ns, st.st_ino, st.st_size))
            except FileNotFoundError:
                out.append(None)
        return tuple(out)


@dataclass(frozen=True)
class _Loaded:
    current: LocalKey
    previous: dict[bytes, LocalKey]  # by key id, current left out
    env_previous: frozenset[bytes]
    derive: bytes
    stamp: tuple


class Keyring:
    """A :class:`~safehold.store.sealing.KeyProvider` over the current and previous KEKs of one kind."""

    def __init__(self, source: KeySource):
        self.source = source
        self._lock = threading.Lock()
        self._state = _load(source)
        self._checked = time.monotonic()

    def __repr__(self) -> str:  # never show a key
        return f"Keyring({self.source.kind}, current {self.current_id.hex()}, keys <hidden>)"

    # ------------------------------------------------------------------ state

    def _now(self) -> _Loaded:
        if time.monotonic() - self._checked >= self.source.check_seconds:
            self.reload()
        return self._state

    def reload(self, *, force: bool = False) -> None:
        """Look at the files again; read them if they changed (or ``force``)."""
        with self._lock:
            self._checked = time.monotonic()
            if force or self.source._stamp() != self._state.stamp:
                self._state = _load(self.source)

    @property
    def current_id(self) -> bytes:
        return self._now().current.id

    def previous_ids(self) -> list[bytes]:
        return sorted(self._now().previous)

    def env_previous_ids(self) -> frozenset[bytes]:
        return self._now().env_previous

    def derive_secret(self) -> bytes:
        return self._now().derive

    # ------------------------------------------------------------------ KeyProvider

    def wrap_with_id(self, data_key: bytes, aad: bytes) -> tuple[bytes, bytes]:
        current = self._now().current
        return current.id, current.wrap(data_key, aad)

    def wrap(self, data_key: bytes, aad: bytes) -> bytes:
        return self.wrap_with_id(data_key, aad)[1]

    def unwrap_id(self, kid: bytes, wrapped: bytes, aad: bytes) -> bytes:
        return self.key(kid).unwrap(wrapped, aad)

    def unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
        """A blob without a key id (written before key rings): try every key, the current one first."""
        return self._by_trial(wrapped, aad)[1]

    def which(self, wrapped: bytes, aad: bytes) -> bytes | None:
        """The id of the key that wrapped ``wrapped`` (a blob without a key id), or ``None`` if none in the ring."""
        try:
            return self._by_trial(wrapped, aad)[0].id
        except InvalidTag:
            return None

    def _by_trial(self, wrapped: bytes, aad: bytes) -> tuple[LocalKey, bytes]:
        state = self._now()
        for key in (state.current, *state.previous.values()):
            try:
                return key, key.unwrap(wrapped, aad)
            except InvalidTag:
                continue
        raise InvalidTag

    def key(self, kid: bytes) -> LocalKey:
        """The ring's key ``kid``; if it is not held, the files are read again first (another process may have
        just rotated)."""
        found = _find(self._now(), kid)
        if found is None:
            self.reload(force=True)
            found = _find(self._state, kid)
        if found is not None:
            return found
        raise SafeholdError(
            "keys.unknown_key",
            f"A sealed blob names {self.source.kind} key {kid.hex()}, which is not in the key ring "
            "(a previous key retired too early or not given?).",
            status=500,
        )

    def derive(self, label: bytes) -> bytes:
        return hmac.new(self.derive_secret(), label, hashlib.sha256).digest()


def _find(state: _Loaded, kid: bytes) -> LocalKey | None:
    return state.current if state.current.id == kid else state.previous.get(kid)


def _load(source: KeySource) -> _Loaded:
    stamp = source._stamp()
    current = LocalKey.load(source.key_file, source.env_value)
    previous: dict[bytes, LocalKey] = {}
    if source.previous_dir.is_dir():
        for path in sorted(source.previous_dir.glob("*.key")):
            key = LocalKey(decode(path.read_text().strip(), str(path)))
            if path.stem != key.id.hex():
                raise SafeholdError("keys.invalid", f"The previous key {path} does not have the key id it is named by.")
            previous[key.id] = key
    env_ids = set()
    for i, value in enumerate(v.strip() for v in (source.env_previous or "").split(",")):
        if value:
            key = LocalKey(decode(value, f"{source.env_name}_PREVIOUS (item {i + 1})"))
            previous[key.id] = key
            env_ids.add(key.id)
    previous.pop(current.id, None)
    if len(previous) > MAX_PREVIOUS:
        raise SafeholdError("keys.too_many", f"At most {MAX_PREVIOUS} previous {source.kind} keys; retire some.")
    return _Loaded(current, previous, frozenset(env_ids), _derive(source, current, previous), stamp)


def _derive(source: KeySource, current: LocalKey, previous: dict[bytes, LocalKey]) -> bytes:
    if source.derive_file.exists():
        return decode(source.derive_file.read_text().strip(), str(source.derive_file))
    if not previous:
        return current.derive_root
    if len(previous) == 1:
        return next(iter(previous.values())).derive_root
    raise SafeholdError(
        "keys.derive_missing",
        f"{source.derive_file} is missing and the {source.kind} ring has several previous keys: restore it from "
        "a backup (file names and signing keys are derived from it).",
    )


def pin_derive(ring: Keyring) -> None:
    """Write the ring's derivation secret down (once): from now on it no longer depends on which keys are held."""
    path = ring.source.derive_file
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_private(path, ring.derive_secret())


def install_new_key(ring: Keyring) -> bytes:
    """Make a fresh KEK the current one, keeping the old one as a previous key; returns the new key id.

    Order matters for a crash at any point: the derivation secret is pinned, the old key copied to the previous
    folder and the marker written before the key file is replaced (atomically), so every file the ring reads is
    whole and the old key is never lost."""
    source = ring.source
    if source.env_value:
        raise SafeholdError("keys.env_given", f"{source.env_name} is given by environment: rotate it there.")
    ring.reload(force=True)
    if len(ring.previous_ids()) >= MAX_PREVIOUS:  # checked before installing: a ring over the limit would not load
        raise SafeholdError(
            "keys.too_many", f"{MAX_PREVIOUS} previous {source.kind} keys are held already: retire some first."
        )
    pin_derive(ring)
    old = decode(source.key_file.read_text().strip(), str(source.key_file))
    old_id = LocalKey(old).id  # from the file itself, not the ring in memory (which another process may have moved on)
    source.previous_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    kept = source.previous_dir / f"{old_id.hex()}.key"
    if not kept.exists():
        write_private(kept, old)
    new = os.urandom(KEY_BYTES)
    new_id = LocalKey(new).id
    source.marker_file.write_text(new_id.hex() + "\n")
    write_private(source.key_file, new)
    ring.reload(force=True)
    return new_id


def read_marker(source: KeySource) -> bytes | None:
    """The key id an unfinished rotation was re-wrapping to, if any."""
    try:
        text = source.marker_file.read_text().strip()
    except FileNotFoundError:
        return None
    return bytes.fromhex(text) if KEY_ID_RE.fullmatch(text) else None


def ring_for(settings: Settings, kind: str) -> Keyring:
    """The ring of the ``instance`` key (review media, webhook, exchange and TOTP secrets) or the ``evidence`` key
    (the per-item data keys of preserved evidence)."""
    if kind == "instance":
        file, env, previous = settings.key_file, settings.instance_key, settings.instance_key_previous
    else:
        file, env, previous = settings.evidence_key_file, settings.evidence_key, settings.evidence_key_previous
    return Keyring(KeySource(kind, file, env, previous, settings.key_check_seconds))
