"""PDQ, Meta's 256-bit perceptual image hash — our own implementation of the published algorithm.

Pipeline (facebook/ThreatExchange ``pdq/``): Rec.601 luminance (0.299 R + 0.587 G + 0.114 B) → two-pass Jarosz
tent filter (box windows ``ceil(side / 128)``) → sample 64×64 cell centres → DCT rows/columns 1..16 → each of
the 256 coefficients compared with their median (Torben's lower median) → 256 bits; quality = sum of quantised
64×64 gradients / 90, capped at 100. The arithmetic order follows the C++ exactly, so given the same RGB
pixels our hash is bit-identical to the reference core (and to ``pdqhash``, which HMA uses). See
``docs/pdq.md``.

Modes (what happens before the core):

``reference`` (the canonical pipeline: use it for hashes you put into banks or share)
    Decode at full resolution, hash every pixel. Bit-identical to HMA / ``pdqhash`` on the same decoded
    pixels.
``fast`` (default)
    For JPEG, let libjpeg scale by 1/2, 1/4 or 1/8 inside the IDCT (``Image.draft``) so that both sides stay
    at least :data:`FAST_MIN_SIDE` px, then hash as ``reference``. Other formats hash exactly as
    ``reference``. Deviation from ``reference`` on 12 MP photos: mean ≈ 1.5 bits, max 4 (``docs/pdq.md``),
    against a 31-bit threshold; ≈ 9× HMA's throughput.
``cimg512``
    What Meta's ``pdq-photo-hasher`` binary does today: images with a side over 512 px are squashed to 512×512
    by CImg's default nearest-neighbour resize before hashing. Offered for comparison; not recommended
    (aliasing).

Hex form: bit ``k = 16·row + column`` of the 16×16 DCT grid is bit ``k`` of a 256-bit big-endian integer, the
text form of the C++ ``Hash256`` and of HMA, ThreatExchange and NCMEC PDQ exports.
"""

from __future__ import annotations

import copy
import re
from contextlib import nullcontext
from typing import ClassVar

import numpy as np
from PIL import Image

from safehold.errors import SafeholdError
from safehold.signals import _pdq_kernels as _k
from safehold.signals.base import ContentHasher, Signal, SignalType
from safehold.signals.budget import WorkBudget
from safehold.signals.image import (
    MAX_JPEG_SCANS,
    MAX_JPEG_SEGMENTS,
    MAX_PIXELS,
    decode,
    exif_orientation,
    prepare,
    to_array,
)
from safehold.signals.isolation import Isolation

#: Meta's recommendation: hashes with quality below 50 should be reported but not matched (:meth:`PdqSignal.unusable`).
MIN_QUALITY = 50
#: Meta's recommended match threshold (distance ≤ 31 matches).
DEFAULT_THRESHOLD = 31
MODES: tuple[str, ...] = ("fast", "reference", "cimg512")
DEFAULT_MODE = "fast"
#: In ``fast`` mode a JPEG is DCT-scaled down no further than this many pixels on its shorter side.
FAST_MIN_SIDE = 1024
#: The names of the dihedral variants in ``extra["dihedral"]``, in order (as Meta's
#: ``pdqhash.compute_dihedral``).
DIHEDRAL_NAMES: tuple[str, ...] = (
    "rotate90", "rotate180", "rotate270", "flipx", "flipy", "flip_plus1", "flip_minus1",
)  # fmt: skip

_MIN_HASHABLE_SIDE = 5  # the reference returns an all-zero hash, quality 0, below this
_CIMG_SIDE = 512
_HEX64 = re.compile(r"[0-9a-fA-F]{64}\Z")
_DCT = _k.dct_matrix()
_ZERO_HASH = "0" * 64


class PdqSignal(SignalType):
    name: ClassVar[str] = "pdq"
    description: ClassVar[str] = (
        "PDQ: Meta's 256-bit perceptual photo hash (64 hex characters), matched by Hamming distance."
    )
    matching = "hamming"
    default_threshold = DEFAULT_THRESHOLD
    max_threshold = 63
    perceptual_for = ("image",)

    @classmethod
    def index_cls(cls):
        from safehold.matching.pdq_index import PdqIndex

        return PdqIndex

    @classmethod
    def distance(cls, a: str, b: str) -> int:
        return hamming(a, b)

    @classmethod
    def unusable(cls, signal: Signal) -> str | None:
        """Meta's advice: a hash of quality below :data:`MIN_QUALITY` is reported, never matched."""
        return "pdq.low_quality" if signal.quality is not None and signal.quality < MIN_QUALITY else None

    @classmethod
    def query_variants(cls, signal: Signal) -> dict[str, str]:
        return dict(zip(DIHEDRAL_NAMES, signal.extra.get("dihedral") or (), strict=False))

    @classmethod
    def normalize(cls, value: str) -> str:
        if not isinstance(value, str):
            raise SafeholdError(
                "signal.invalid_value", "A PDQ hash must be a string of 64 hex characters.", detail={"type": "pdq"}
            )
        v = value.strip()
        if not _HEX64.match(v):
            raise SafeholdError(
                "signal.invalid_value",
                f"A PDQ hash is 64 hex characters; got {len(v)} characters"
                + ("" if len(v) != 64 else " with non-hex characters")
                + ".",
                detail={"type": "pdq"},
            )
        return v.lower()


def hamming(a_hex: str, b_hex: str) -> int:
    """Bit distance between two PDQ hashes (hex, any case)."""
    a = PdqSignal.normalize(a_hex)
    b = PdqSignal.normalize(b_hex)
    return (int(a, 16) ^ int(b, 16)).bit_count()


# ----------------------------------------------------------------------------------------------------- core


def _window(old: int) -> int:
    return (old + 2 * 64 - 1) // (2 * 64)


def _luma(pixels: np.ndarray) -> np.ndarray:
    pixels = np.ascontiguousarray(pixels)
    luma = np.empty(pixels.shape[:2], dtype=np.float32)
    if pixels.ndim == 3:
        _k.luma_from_rgb(pixels, luma)
    else:
        _k.luma_from_grey(pixels, luma)
    return luma


def _quality(b64: np.ndarray) -> int:
    f100, f255 = np.float32(100), np.float32(255)
    dy = (((b64[:-1, :] - b64[1:, :]) * f100) / f255).astype(np.int32)
    dx = (((b64[:, :-1] - b64[:, 1:]) * f100) / f255).astype(np.int32)
    total = int(np.abs(dy).sum()) + int(np.abs(dx).sum())
    return min(total // 90, 100)


def dct16_from_luma(luma: np.ndarray, *, overwrite: bool = False) -> tuple[np.ndarray | None, int]:
    """The 16×16 float32 DCT block and quality for a float32 luminance plane (``None, 0`` if too small).

    ``overwrite=True`` lets the filter work in ``luma`` itself (saves a full-size copy).
    """
    rows, cols = luma.shape
    if rows < _MIN_HASHABLE_SIDE or cols < _MIN_HASHABLE_SIDE:
        return None, 0
    b64 = np.empty((64, 64), dtype=np.float32)
    if rows == 64 and cols == 64:
        b64[:] = luma  # already at PDQ's working size (the reference skips the filter here too)
    else:
        buf1 = (
            luma
            if overwrite and luma.dtype == np.float32 and luma.flags.c_contiguous
            else np.array(luma, dtype=np.float32, order="C", copy=True)
        )
        buf2 = np.empty_like(buf1)
        _k.jarosz_decimate(buf1, buf2, _window(cols), _window(rows), 2, b64)
    quality = _quality(b64)
    t = np.empty((16, 64), dtype=np.float32)
    b = np.empty((16, 16), dtype=np.float32)
    _k.dct64_to_16(b64, _DCT, t, b)
    return b, quality


def _bits_hex(b: np.ndarray) -> str:
    flat = b.ravel()
    median = np.partition(flat, 127)[127]  # Torben's median of 256 values is the 128th smallest
    return np.packbits((flat > median)[::-1]).tobytes().hex()


_ODD = (np.arange(16) & 1).astype(bool)
_SIGN_ODD_POS = np.where(_ODD, 1, -1).astype(np.float32)  # +1 on odd index, -1 on even
_SIGN_CHECKER = np.where((np.arange(16)[:, None] + np.arange(16)[None, :]) & 1, -1, 1).astype(np.float32)


def _dihedral_blocks(b: np.ndarray) -> list[np.ndarray]:
    """The DCT blocks of the 7 other dihedral images, from the original's block (sign flips and a
    transpose)."""
    col = _SIGN_ODD_POS[None, :]
    row = _SIGN_ODD_POS[:, None]
    return [
        (b * col).T,  # rotate 90° counter-clockwise (PIL Transpose.ROTATE_90)
        b * _SIGN_CHECKER,  # rotate 180°
        (b * row).T,  # rotate 270° counter-clockwise = 90° clockwise (ROTATE_270)
        b * row,  # flip x: mirror top-bottom (FLIP_TOP_BOTTOM)
        b * col,  # flip y: mirror left-right (FLIP_LEFT_RIGHT)
        b.T,  # flip about the main diagonal (TRANSPOSE)
        (b * _SIGN_CHECKER).T,  # flip about the anti-diagonal (TRANSVERSE)
    ]


def hash_pixels(pixels: np.ndarray, *, dihedral: bool = False):
    """Hash a ``uint8`` (H, W) grey or (H, W, 3) RGB array (see :func:`safehold.signals.image.to_array`).

    Returns ``(hex, quality)``, or ``(hex, quality, [7 dihedral hexes])`` with ``dihedral=True``.
    """
    return hash_luma(_luma(pixels), dihedral=dihedral, _overwrite=True)


def hash_luma(luma: np.ndarray, *, dihedral: bool = False, _overwrite: bool = False):
    """Like :func:`hash_pixels` for a float32 luminance plane (values 0–255); ``luma`` is not modified."""
    b, quality = dct16_from_luma(np.asarray(luma, dtype=np.float32), overwrite=_overwrite)
    if b is None:
        return (_ZERO_HASH, 0, [_ZERO_HASH] * 7) if dihedral else (_ZERO_HASH, 0)
    h = _bits_hex(b)
    if dihedral:
        return h, quality, [_bits_hex(x) for x in _dihedral_blocks(b)]
    return h, quality


def _cimg_512(pixels: np.ndarray) -> np.ndarray:
    """CImg ``resize(512, 512)`` with its default nearest-neighbour interpolation (source index ⌊x·W/512⌋)."""
    rows, cols = pixels.shape[:2]
    if rows <= _CIMG_SIDE and cols <= _CIMG_SIDE:
        return pixels
    ys = (np.arange(_CIMG_SIDE) * rows) // _CIMG_SIDE
    xs = (np.arange(_CIMG_SIDE) * cols) // _CIMG_SIDE
    return pixels[ys][:, xs]


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        known = ", ".join(MODES)
        raise SafeholdError(
            "signal.invalid_mode", f"Unknown PDQ mode {mode!r}; use one of {known}.", detail={"mode": mode}
        )
    return mode


def _decode_luma(
    data: bytes, mode: str, *, max_pixels: int, exif_transpose: bool = False, prepared: list | None = None
):
    """Decode ``data`` the way ``mode`` hashes it; returns ``(float32 luma, EXIF orientation)``.

    Pillow's image and the uint8 copy are released before the filter's second float plane exists, so the
    peak is about 8 bytes per hashed pixel. ``prepared``: a one-item list holding the image from
    :func:`_prepare`, taken out of it here so that no caller's frame keeps the decoded bitmap alive.
    """
    img = prepared.pop() if prepared else _prepare(data, mode, max_pixels=max_pixels)
    img = decode(img, exif_transpose=exif_transpose)
    orientation = exif_orientation(img)
    pixels = to_array(img)
    del img
    if mode == "cimg512":
        pixels = _cimg_512(pixels)
    return _luma(pixels), orientation


def _prepare(data: bytes, mode: str, *, max_pixels: int, **limits):
    draft = (FAST_MIN_SIDE, FAST_MIN_SIDE) if _check_mode(mode) == "fast" else None
    return prepare(data, max_pixels=max_pixels, draft=draft, **limits)


def hash_image(
    img_or_bytes: Image.Image | bytes, mode: str = DEFAULT_MODE, *, dihedral: bool = False, max_pixels: int = MAX_PIXELS
):
    """PDQ of an image given as bytes (decoded safely by :func:`safehold.signals.image.load_image`) or as a PIL image.

    Returns ``(hex, quality)`` (plus the 7 dihedral hexes with ``dihedral=True``). A PIL image is hashed as
    given (``fast`` cannot DCT-scale an image that is already decoded, so it equals ``reference`` there).
    """
    _check_mode(mode)
    if isinstance(img_or_bytes, Image.Image):
        pixels = to_array(img_or_bytes)
        if mode == "cimg512":
            pixels = _cimg_512(pixels)
        return hash_pixels(pixels, dihedral=dihedral)
    luma, _ = _decode_luma(bytes(img_or_bytes), mode, max_pixels=max_pixels)
    return hash_luma(luma, dihedral=dihedral, _overwrite=True)


class PdqHasher(ContentHasher):
    """Bytes → one ``pdq`` :class:`Signal` (with quality and, optionally, the 7 dihedral variants).

    ``budget``: a process-wide :class:`~safehold.signals.budget.WorkBudget` counted in pixels. The image's
    decoded size (from its header, after the JPEG draft) is reserved from it before decoding and given back
    once hashed, so concurrent hashes cannot together hold more pixels than its capacity (``media.busy``).
    ``max_jpeg_scans`` / ``max_jpeg_segments``: see :func:`safehold.signals.image.jpeg_structure`.
    ``isolation``: an :class:`~safehold.signals.isolation.Isolation`; an image of at least its ``min_pixels``
    (after the JPEG draft) is decoded and hashed in a child process with its deadline, the pixels still reserved
    from ``budget`` here.
    """

    media: ClassVar[str] = "image"
    signal_types: ClassVar[tuple[str, ...]] = ("pdq",)

    def __init__(
        self,
        mode: str = DEFAULT_MODE,
        dihedral: bool = False,
        max_pixels: int = MAX_PIXELS,
        *,
        exif_transpose: bool = False,
        max_jpeg_scans: int = MAX_JPEG_SCANS,
        max_jpeg_segments: int = MAX_JPEG_SEGMENTS,
        budget: WorkBudget | None = None,
        isolation: Isolation | None = None,
    ):
        self.mode = _check_mode(mode)
        self.dihedral = dihedral
        self.max_pixels = max_pixels
        self.exif_transpose = exif_transpose
        self.max_jpeg_scans = max_jpeg_scans
        self.max_jpeg_segments = max_jpeg_segments
        self.budget = budget
        self.isolation = isolation

    def hash_bytes(self, data: bytes) -> list[Signal]:
        data = bytes(data)
        img = _prepare(
            data,
            self.mode,
            max_pixels=self.max_pixels,
            max_jpeg_scans=self.max_jpeg_scans,
            max_jpeg_segments=self.max_jpeg_segments,
        )
        width, height = img.size
        prepared = [img]
        del img  # the list is the only reference: _decode_luma frees the bitmap as soon as it has the pixels
        with self.budget.hold(width * height) if self.budget is not None else nullcontext():
            if self.isolation is not None and self.isolation.wanted(width * height):
                prepared.clear()
                return self.isolation.run(PdqHasher.hash_bytes, self._alone(), data)
            return self._hash(data, prepared)

    def _alone(self) -> PdqHasher:
        """This hasher for a child process: the same settings, without the process's budget and isolation (the
        parent holds the pixels; the child hashes in process)."""
        alone = copy.copy(self)
        alone.budget = alone.isolation = None
        return alone

    def _hash(self, data: bytes, prepared: list) -> list[Signal]:
        luma, orientation = _decode_luma(
            data, self.mode, max_pixels=self.max_pixels, exif_transpose=self.exif_transpose, prepared=prepared
        )
        extra: dict = {"mode": self.mode, "hashed_size": [int(luma.shape[1]), int(luma.shape[0])]}
        result = hash_luma(luma, dihedral=self.dihedral, _overwrite=True)
        del luma
        if orientation != 1:
            extra["exif_orientation"] = orientation
        if self.dihedral:
            extra["dihedral"] = list(result[2])
        return [Signal(type="pdq", value=result[0], quality=int(result[1]), extra=extra)]
