"""The signal interfaces: what a hash *is* (``SignalType``) and what turns content into hashes (``ContentHasher``).

Modelled on python-threatexchange's small interfaces: each signal type lives in its own module and registers
itself in :mod:`safehold.signals.registry`; licensed hashes (PhotoDNA, …) arrive the same way as plug-ins.
Detectors are pure: nothing here knows about storage, cases or HTTP.

A signal type is the unit of extension: it carries everything the rest of Safehold needs to index, match and
weigh its values (its index class, distance, thresholds, match rule, confidence, quality floor, query variants,
the media it is the perceptual hash of), so no code outside a signal type branches on a type's name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    from safehold.matching.protocol import SignalIndex

#: The lowest confidence of a match within its bank's threshold (see :meth:`SignalType.confidence`).
MIN_MATCH_CONFIDENCE = 0.5


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
    """A kind of hash: how its values are written, indexed and compared, and how sure a match is.

    Only :meth:`normalize` is required. An ``exact`` type gets :class:`~safehold.matching.exact_index.ExactIndex`
    and distance 0/1; any other type names its index class in :meth:`index_cls` (see docs/signals.md).
    """

    name: ClassVar[str]
    description: ClassVar[str]
    #: How values compare (informational; the index class does the work): ``exact`` (equal values match),
    #: ``hamming`` (bit distance), ``distance`` (another metric, e.g. L2) or ``custom``.
    matching: ClassVar[Literal["exact", "hamming", "distance", "custom"]] = "exact"
    #: Threshold used by a bank that sets none for this type (in the type's distance units; 0 for exact types).
    default_threshold: ClassVar[int] = 0
    #: Largest threshold a bank may set for this type.
    max_threshold: ClassVar[int] = 0
    #: Media kinds (``image``, ``video``) this type is a perceptual hash of: content of that kind with no usable
    #: perceptual signal at all is ``unhashable`` rather than ``no_match``.
    perceptual_for: ClassVar[tuple[str, ...]] = ()
    #: Other names hash lists use for this type (e.g. ``photodna`` for NCMEC's ``<pdna>``); an import naming an
    #: alias stores the entry under :attr:`name`.
    aliases: ClassVar[tuple[str, ...]] = ()

    @classmethod
    @abstractmethod
    def normalize(cls, value: str) -> str:
        """Validate ``value`` and return its canonical form; raise ``SafeholdError('signal.invalid_value')``."""

    @classmethod
    def index_cls(cls) -> type[SignalIndex]:
        """The class indexing this type's values: it implements :class:`~safehold.matching.protocol.SignalIndex`
        and is built with no arguments. Exact types share the exact index; others must say."""
        if cls.matching != "exact":
            raise NotImplementedError(f"{cls.__qualname__} matches by {cls.matching!r} but names no index_cls()")
        from safehold.matching.exact_index import ExactIndex

        return ExactIndex

    @classmethod
    def distance(cls, a: str, b: str) -> int:
        """How far apart two values are, in threshold units (exact types: 0 when equal, else 1)."""
        return 0 if cls.normalize(a) == cls.normalize(b) else 1

    @classmethod
    def is_match(cls, distance: int, threshold: int, detail: dict | None) -> bool:
        """Whether a candidate the index found matches for a bank with ``threshold`` (``detail``: the index's)."""
        return distance <= threshold

    @classmethod
    def bank_detail(cls, threshold: int, detail: dict | None) -> dict | None:
        """What the answer shows of the index's ``detail`` for a bank with ``threshold`` (vPDQ: the frame-match
        percentages at that bank's frame threshold); by default the detail as it is."""
        return detail

    @classmethod
    def confidence(cls, distance: int, threshold: int, detail: dict | None) -> float:
        """How sure a match is, from 0.5 (at the bank's threshold) to 1.0 (identical):
        ``1 - distance / (2 × threshold)``; exact matches (distance 0) are 1.0."""
        if not distance:
            return 1.0
        return max(MIN_MATCH_CONFIDENCE, 1.0 - distance / (2 * max(threshold, 1)))

    @classmethod
    def unusable(cls, signal: Signal) -> str | None:
        """A warning code when ``signal`` must not be matched (e.g. too featureless), else ``None``."""
        return None

    @classmethod
    def query_variants(cls, signal: Signal) -> dict[str, Any]:
        """Extra values to look up for ``signal``, by variant name (PDQ: its rotations and flips, from
        ``signal.extra``). A hit on a variant counts only in banks that accept variants (``dihedral``)."""
        return {}


class ContentHasher(ABC):
    """Turns bytes of content into signals.

    ``media`` says which content it hashes: ``image``, ``video`` or ``any`` (every file).
    """

    media: ClassVar[str]
    signal_types: ClassVar[tuple[str, ...]]

    @abstractmethod
    def hash_bytes(self, data: bytes) -> list[Signal]:
        """Hash ``data``; raise ``SafeholdError`` with a ``media.*`` code for content it cannot hash."""
