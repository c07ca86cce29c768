"""The signal interfaces: what a hash *is* (``SignalType``) and what turns content into hashes (``ContentHasher``).

Modelled on python-threatexchange's small interfaces: each signal type lives in its own module and registers
itself in :mod:`safehold.signals.registry`; licensed hashes (PhotoDNA, …) arrive the same way as plug-ins.
Detectors are pure: nothing here knows about storage, cases or HTTP.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar, Literal


@dataclass(frozen=True)
class Signal:
    """One hash of one piece of content.

    ``value`` is the canonical text form (lower-case hex for binary hashes). ``quality`` is the hasher's own
    confidence (PDQ: 0–100); ``extra`` carries type-specific facts (e.g. PDQ dihedral variants).
    """

    type: str
    value: str
    quality: int | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)


class SignalType(ABC):
    """A kind of hash and how two values of it are compared."""

    name: ClassVar[str]
    description: ClassVar[str]
    #: ``exact``: equal values match; ``hamming``: values within a bit distance match.
    matching: ClassVar[Literal["exact", "hamming", "custom"]] = "exact"
    #: Default match threshold for ``hamming`` types (bits); 0 for exact types.
    default_threshold: ClassVar[int] = 0
    #: Largest threshold a bank may set (``hamming`` types).
    max_threshold: ClassVar[int] = 0

    @classmethod
    @abstractmethod
    def normalize(cls, value: str) -> str:
        """Validate ``value`` and return its canonical form; raise ``SafeholdError('signal.invalid_value')``."""


class ContentHasher(ABC):
    """Turns bytes of content into signals.

    ``media`` says which content it hashes: ``image``, ``video`` or ``any`` (every file).
    """

    media: ClassVar[str]
    signal_types: ClassVar[tuple[str, ...]]

    @abstractmethod
    def hash_bytes(self, data: bytes) -> list[Signal]:
        """Hash ``data``; raise ``SafeholdError`` with a ``media.*`` code for content it cannot hash."""
