"""The signal registry: which signal types and hashers exist, and :func:`hash_content`, used by scanning.

Built-in types: ``pdq``, ``md5``, ``sha1``, ``sha256``, ``vpdq``, ``url``; plug-ins add more through the
``safehold.signals`` entry-point group (see :mod:`safehold.signals.plugins`). Everything is loaded lazily on
first use and cached per process; :func:`reload` forgets the cache (tests, hot reload).
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from safehold.errors import SafeholdError, detached
from safehold.signals.base import ContentHasher, Signal, SignalType
from safehold.signals.media import check_size, sniff, sniff_format
from safehold.signals.plugins import LoadedPlugins, load_plugins

log = logging.getLogger(__name__)

#: Built-in signal types: name → (module, class). Imported lazily: a broken piece is reported, not fatal.
BUILTIN_SIGNAL_TYPES: dict[str, tuple[str, str]] = {
    "pdq": ("safehold.signals.pdq", "PdqSignal"),
    "md5": ("safehold.signals.crypto", "Md5Signal"),
    "sha1": ("safehold.signals.crypto", "Sha1Signal"),
    "sha256": ("safehold.signals.crypto", "Sha256Signal"),
    "vpdq": ("safehold.signals.vpdq", "VpdqSignal"),
    "url": ("safehold.signals.url", "UrlSignal"),
}

MEDIA_KINDS = ("image", "video", "other")


@dataclass
class _State:
    types: dict[str, type[SignalType]]
    plugins: LoadedPlugins
    errors: list[SafeholdError]
    #: alias → type name (a type's own name always wins over another's alias)
    aliases: dict[str, str] = field(default_factory=dict)


_lock = threading.Lock()
_state: _State | None = None


def _import(module: str, attr: str) -> Any:
    return getattr(importlib.import_module(module), attr)


def _load() -> _State:
    global _state
    st = _state
    if st is not None:
        return st
    with _lock:
        if _state is not None:
            return _state
        types: dict[str, type[SignalType]] = {}
        errors: list[SafeholdError] = []
        for name, (module, attr) in BUILTIN_SIGNAL_TYPES.items():
            try:
                types[name] = _import(module, attr)
            except Exception as e:  # noqa: BLE001 - report, keep the others usable
                err = SafeholdError(
                    "signal.unavailable",
                    f"built-in signal type {name!r} cannot be loaded: {type(e).__name__}: {e}",
                    status=500, detail={"signal_type": name},
                )  # fmt: skip
                log.warning("%s", err.message)
                errors.append(err)
        # Reserve every built-in name, even one that failed to import, so no plug-in can take it over.
        reserved = {n: types.get(n, SignalType) for n in BUILTIN_SIGNAL_TYPES}
        plugins = load_plugins(reserved)
        types.update(plugins.signal_types)
        errors.extend(plugins.errors)
        aliases = {a: name for name, st in types.items() for a in st.aliases if a not in types}
        _state = _State(types=types, plugins=plugins, errors=errors, aliases=aliases)
        return _state


def reload() -> None:
    """Forget loaded types and plug-ins; the next call loads them again."""
    global _state
    with _lock:
        _state = None


def all_signal_types() -> dict[str, type[SignalType]]:
    """Every usable signal type by name (built-ins, then plug-ins)."""
    return dict(_load().types)


def load_errors() -> list[SafeholdError]:
    """Problems met while loading built-ins and plug-ins (each was skipped)."""
    return list(_load().errors)


def plugins() -> LoadedPlugins:
    """The loaded plug-ins (for status pages and ``safehold doctor``-style commands)."""
    return _load().plugins


def signal_type(name: str) -> type[SignalType]:
    """The signal type called ``name`` (or one of its :attr:`~SignalType.aliases`); unknown names raise
    ``signal.unknown_type`` listing the known ones."""
    st = _load()
    types = st.types
    try:
        return types[name] if name in types else types[st.aliases[name]]
    except (KeyError, TypeError):
        known = sorted(types)
        raise SafeholdError(
            "signal.unknown_type",
            f"unknown signal type {name!r}; known types: {', '.join(known)}",
            detail={"type": name if isinstance(name, str) else repr(name), "known": known},
        ) from None


def threshold_for(thresholds: Mapping[str, int], type_name: str) -> int:
    """A bank's threshold for ``type_name``: its own setting, else the type's default (0 for an unknown type)."""
    if type_name in thresholds:
        return thresholds[type_name]
    try:
        return signal_type(type_name).default_threshold
    except SafeholdError:
        return 0


def perceptual_types(media: str | None) -> frozenset[str]:
    """The signal types that are a perceptual hash of ``media`` (``image``: PDQ and any such plug-in)."""
    return frozenset(name for name, st in _load().types.items() if media in st.perceptual_for)


def normalize(type_name: str, value: str) -> str:
    """Canonical form of ``value`` for type ``type_name``.

    Raises ``signal.unknown_type`` or ``signal.invalid_value``.
    """
    return signal_type(type_name).normalize(value)


def _build_hashers(
    media: str,
    *,
    pdq_mode: str | None,
    dihedral: bool,
    vpdq_options: Mapping[str, Any] | None,
    pdq_options: Mapping[str, Any] | None = None,
) -> tuple[list[ContentHasher], list[SafeholdError]]:
    if media not in MEDIA_KINDS:
        raise SafeholdError(
            "signal.invalid_media", f"media must be one of {', '.join(MEDIA_KINDS)}, got {media!r}",
            detail={"media": media},
        )  # fmt: skip
    from safehold.signals.crypto import CryptoHasher

    hashers: list[ContentHasher] = [CryptoHasher()]
    errors: list[SafeholdError] = []
    if media == "image":
        try:
            pdq_hasher_cls = _import("safehold.signals.pdq", "PdqHasher")
            kwargs: dict[str, Any] = {**dict(pdq_options or {}), "dihedral": dihedral}
            if pdq_mode is not None:
                kwargs["mode"] = pdq_mode
            hashers.append(pdq_hasher_cls(**kwargs))
        except SafeholdError:  # a configuration error such as an unknown pdq_mode: the caller must know
            raise
        except Exception as e:  # noqa: BLE001
            errors.append(
                SafeholdError(
                    "signal.unavailable",
                    f"the PDQ hasher cannot be used: {type(e).__name__}: {e}",
                    status=500,
                    detail={"signal_type": "pdq"},
                )  # fmt: skip
            )
    elif media == "video":
        from safehold.signals.vpdq import VpdqHasher

        hashers.append(VpdqHasher(**dict(vpdq_options or {})))
    state = _load()
    for cls in state.plugins.hashers:
        if cls.media != "any" and cls.media != media:
            continue
        try:
            hashers.append(cls())
        except Exception as e:  # noqa: BLE001 - a plug-in hasher that cannot start is reported and skipped
            name = state.plugins.origin.get(cls, "?")
            errors.append(
                SafeholdError(
                    "plugin.hasher_failed", f"signal plug-in {name!r}: {cls.__qualname__}() failed: {e}",
                    status=500, detail={"plugin": name, "hasher": cls.__qualname__},
                )
            )  # fmt: skip
    return hashers, errors


def hashers_for(
    media: str,
    *,
    pdq_mode: str | None = None,
    dihedral: bool = False,
    vpdq_options: Mapping[str, Any] | None = None,
) -> list[ContentHasher]:
    """Ready hasher instances for ``media`` (``image``/``video``/``other``): crypto always, PDQ for images,
    vPDQ for videos, plus plug-in hashers for that media or ``any``. Hashers that cannot be built are skipped
    (and logged); :func:`hash_content` reports them in its result."""
    hashers, errors = _build_hashers(media, pdq_mode=pdq_mode, dihedral=dihedral, vpdq_options=vpdq_options)
    for e in errors:
        log.warning("%s", e.message)
    return hashers


@dataclass
class HashResult:
    """Everything :func:`hash_content` learnt about one blob."""

    media: str
    signals: list[Signal] = field(default_factory=list)
    errors: list[SafeholdError] = field(default_factory=list)
    size: int = 0
    #: Container format from magic bytes (``"png"``, ``"mp4"``, …) when recognised.
    format: str | None = None

    def get(self, type_name: str) -> Signal | None:
        """The first signal of ``type_name``, or ``None``."""
        return next((s for s in self.signals if s.type == type_name), None)

    def values(self, type_name: str) -> list[str]:
        return [s.value for s in self.signals if s.type == type_name]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict:
        return {
            "media": self.media,
            "format": self.format,
            "size": self.size,
            "signals": [
                {
                    "type": s.type,
                    "value": s.value,
                    **({"quality": s.quality} if s.quality is not None else {}),
                }
                for s in self.signals
            ],
            "errors": [e.to_dict() for e in self.errors],
        }


def _run_hasher(hasher: ContentHasher, data: bytes, result: HashResult) -> None:
    name = type(hasher).__qualname__
    try:
        produced = hasher.hash_bytes(data)
    except SafeholdError as e:
        if e.status in (429, 503):  # "try again later" (the server's share is taken): not a fact about the content
            raise
        result.errors.append(detached(e))  # its frames hold ``data``: kept, they would keep the upload
        return
    except MemoryError:
        result.errors.append(
            SafeholdError(
                "media.too_large",
                f"{name} ran out of memory on this content",
                status=413,
                detail={"hasher": name},
            )  # fmt: skip
        )
        return
    except Exception as e:  # noqa: BLE001 - a hasher bug must not lose the other signals
        log.exception("hasher %s failed", name)
        result.errors.append(
            SafeholdError(
                "signal.hasher_failed",
                f"{name} failed: {type(e).__name__}: {e}",
                status=500,
                detail={"hasher": name},
            )  # fmt: skip
        )
        return
    allowed = set(getattr(hasher, "signal_types", ()) or ())
    for s in produced or ():
        if not isinstance(s, Signal) or (allowed and s.type not in allowed):
            result.errors.append(
                SafeholdError(
                    "signal.hasher_failed",
                    f"{name} returned an undeclared or malformed signal",
                    status=500,
                    detail={"hasher": name},
                )  # fmt: skip
            )
            continue
        result.signals.append(s)


def hash_content(
    data: bytes,
    *,
    filename: str | None = None,
    pdq_mode: str | None = None,
    dihedral: bool = False,
    max_bytes: int | None = None,
    vpdq_options: Mapping[str, Any] | None = None,
    pdq_options: Mapping[str, Any] | None = None,
) -> HashResult:
    """Hash one blob with every applicable hasher.

    ``media`` comes from :func:`safehold.signals.media.sniff` (magic bytes; ``filename`` only as fallback).
    Crypto hashes are always present; PDQ is added for images, vPDQ for videos, plus plug-in hashers. A hasher
    that fails adds a ``SafeholdError`` to ``errors`` and the other signals are still returned (an image that
    does not decode still has its MD5/SHA-1/SHA-256). Empty input raises ``media.empty``; input above
    ``max_bytes`` (default :data:`~safehold.signals.media.MAX_BYTES`) raises ``media.too_large``. A hasher
    error with status 429 or 503 (``media.busy``: the server is at capacity) is raised, not recorded: the
    content is not at fault and the caller should try again. ``pdq_options`` / ``vpdq_options`` are keyword
    arguments for :class:`~safehold.signals.pdq.PdqHasher` / :class:`~safehold.signals.vpdq.VpdqHasher`.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise SafeholdError("media.invalid", "content must be bytes")
    data = bytes(data)
    size = check_size(data, max_bytes)
    if size == 0:
        raise SafeholdError("media.empty", "the content is empty")
    media = sniff(data, filename)
    result = HashResult(media=media, size=size, format=sniff_format(data, filename))
    hashers, errors = _build_hashers(
        media, pdq_mode=pdq_mode, dihedral=dihedral, vpdq_options=vpdq_options, pdq_options=pdq_options
    )
    result.errors.extend(errors)
    for h in hashers:
        _run_hasher(h, data, result)
    return result
