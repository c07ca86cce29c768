"""Safe image decoding for every image hasher.

:func:`load_image` turns untrusted bytes into a decoded :class:`PIL.Image.Image` (first frame) or raises
:class:`~safehold.errors.SafeholdError` with one of these stable codes — it never returns half an image:

``media.empty``
    Zero bytes (the same code as :func:`safehold.signals.registry.hash_content` uses).
``media.unsupported_format``
    Not one of the formats we decode (JPEG, PNG, GIF, WebP, TIFF, BMP). Only those decoders are
    ever handed the bytes: Pillow's other plug-ins (EPS → Ghostscript, PSD, ICNS, …) are never tried.
``media.truncated``
    The file ends early. We never set ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES``, and in case another module
    does, JPEG (EOI after the last scan), PNG (IEND), WebP (RIFF length) and BMP (file-size field) are checked
    structurally, independently of that flag. GIF and TIFF rely on their decoders (which raise while the flag
    is off, its default).
``media.corrupt``
    The decoder rejected the data.
``media.decompression_bomb``
    The header claims more than ``max_pixels`` pixels. For JPEG, PNG, GIF, WebP and BMP our own small header
    reader checks this before Pillow parses anything; for TIFF it is checked after Pillow reads the header and
    before any pixel is decoded.
``media.too_large``
    More than ``max_bytes`` bytes, or a side longer than ``max_dimension`` pixels.
``media.too_complex``
    A JPEG whose structure would make decoding cost far more than its size suggests: more than
    ``max_jpeg_scans`` scans (a progressive JPEG has about 10; 60,000 repeated scans cost libjpeg ~10 s), or
    more than ``max_jpeg_segments`` APPn/COM segments (Pillow concatenates repeated EXIF segments, which is
    quadratic: 1,000 of them cost ~20 s), or more table segments than scans could use. Found by a marker scan
    of the bytes (:func:`jpeg_structure`, linear, in C via ``re``) before any decoder sees the file.

**Orientation.** By default the stored pixels are returned as they are, *without* applying the EXIF
Orientation tag. That is what Meta's reference hashers (C++ with CImg, Java with ImageIO), ``pdqhash`` and HMA
do, so it is most likely what the hashes in industry lists were computed from; see ``docs/pdq.md``. Pass
``exif_transpose=True`` for display-oriented pixels, and use :func:`exif_orientation` to read the tag.

**Pixel counts.** Pillow's own global guard (``Image.MAX_IMAGE_PIXELS``) is left untouched; its
``DecompressionBombError`` is mapped to ``media.decompression_bomb``, and our per-call ``max_pixels`` (default
50 MP, below Pillow's 89 MP) is checked first, so its warning is never reached with the defaults.
"""

from __future__ import annotations

import io
import re
import struct
import zlib

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from safehold.errors import SafeholdError

#: Largest number of pixels (width × height, first frame) we decode by default.
MAX_PIXELS = 50_000_000
#: Longest side we accept by default.
MAX_DIMENSION = 30_000
#: Largest input we accept by default (256 MiB, the same as ``safehold.signals.media.MAX_BYTES``).
MAX_BYTES = 256 * 1024 * 1024
#: Most scans (SOS segments) a JPEG may have; progressive encoders write about 10 (libjpeg: 10, mozjpeg ≤ 64).
MAX_JPEG_SCANS = 100
#: Most APPn and COM segments a JPEG may have (a camera photo has 2 to 10: JFIF, EXIF, XMP, ICC parts, MPF).
MAX_JPEG_SEGMENTS = 64

#: Pillow format names we hand bytes to. ``MPO`` is a JPEG with extra pictures (phone cameras).
FORMATS: tuple[str, ...] = ("JPEG", "MPO", "PNG", "GIF", "WEBP", "TIFF", "BMP")

_JPEG_FORMATS = frozenset({"JPEG", "MPO"})
_open_formats: tuple[str, ...] | None = None


def _formats() -> tuple[str, ...]:
    """:data:`FORMATS` that this Pillow build can open (plug-ins registered once, on first use)."""
    global _open_formats
    if _open_formats is None:
        Image.init()
        _open_formats = tuple(f for f in FORMATS if f in Image.OPEN)
    return _open_formats


def _err(code: str, message: str, **detail) -> SafeholdError:
    status = {"media.too_large": 413, "media.decompression_bomb": 413, "media.too_complex": 422}.get(code, 400)
    return SafeholdError(code, message, status=status, detail=detail)


def _jpeg_complete(data: bytes) -> bool:
    """True if the JPEG's last scan is followed by an EOI marker (``FFD9``).

    Entropy-coded data never contains ``FF D9`` or ``FF DA`` (``FF`` bytes are stuffed), and an embedded EXIF
    thumbnail's EOI comes before the main image's first scan, so "last EOI after last SOS" is a sound test.
    """
    return data.rfind(b"\xff\xd9") > data.rfind(b"\xff\xda") >= 0


def _png_complete(data: bytes) -> bool:
    return data.rfind(b"IEND") > data.rfind(b"IDAT") >= 0


def _magic(data: bytes) -> str | None:
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:2] == b"BM":
        return "BMP"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    return None


def _header_size(data: bytes, fmt: str | None) -> tuple[int, int] | None:
    """(width, height) read straight from the header bytes, before any decoder sees the file."""
    be16 = lambda at: int.from_bytes(data[at : at + 2], "big")  # noqa: E731
    le = lambda at, n: int.from_bytes(data[at : at + n], "little")  # noqa: E731
    try:
        if fmt == "PNG" and data[12:16] == b"IHDR":
            return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        if fmt == "GIF" and len(data) >= 10:
            return le(6, 2), le(8, 2)
        if fmt == "BMP" and len(data) >= 26:
            return abs(int.from_bytes(data[18:22], "little", signed=True)), abs(
                int.from_bytes(data[22:26], "little", signed=True)
            )
        if fmt == "WEBP":
            kind = data[12:16]
            if kind == b"VP8X" and len(data) >= 30:
                return le(24, 3) + 1, le(27, 3) + 1
            if kind == b"VP8 " and len(data) >= 30:
                return le(26, 2) & 0x3FFF, le(28, 2) & 0x3FFF
            if kind == b"VP8L" and len(data) >= 25:
                bits = le(21, 4)
                return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if fmt == "JPEG":
            i = 2
            while i + 9 <= len(data):
                if data[i] != 0xFF:
                    return None
                marker = data[i + 1]
                if marker == 0xFF:
                    i += 1
                    continue
                if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
                    i += 2
                    continue
                if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                    return be16(i + 7), be16(i + 5)
                if marker == 0xDA:
                    return None
                i += 2 + be16(i + 2)
    except (IndexError, ValueError):
        return None
    return None


_JPEG_NEXT_MARKER = re.compile(rb"\xff[\x01-\xcf\xd8-\xfe]")  # a marker: not stuffing (FF00), RSTn or fill


def jpeg_structure(data: bytes, *, stop_after: int = 1 << 30) -> tuple[int, int, int]:
    """``(scans, app_segments, table_segments)`` of a JPEG, by walking its markers (no decoding).

    ``app_segments`` counts APPn and COM; ``table_segments`` counts every other marker segment (DQT, DHT, DRI, …).
    Entropy-coded data after each SOS is skipped with one regular-expression search for the next marker, so the
    walk costs a few microseconds per segment and is linear in the file size. It stops early once any count
    exceeds ``stop_after``. A malformed structure simply ends the walk: the decoder judges the rest.
    """
    scans = apps = tables = 0
    i, n = 2, len(data)
    while i + 4 <= n and max(scans, apps, tables) <= stop_after:
        if data[i] != 0xFF:
            break
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        if marker == 0xD9:  # EOI
            break
        end = i + 2 + int.from_bytes(data[i + 2 : i + 4], "big")
        if 0xE0 <= marker <= 0xEF or marker == 0xFE:
            apps += 1
        elif marker == 0xDA:
            scans += 1
            found = _JPEG_NEXT_MARKER.search(data, end)
            if found is None:
                break
            end = found.start()
        else:
            tables += 1
        if end <= i:
            break
        i = end
    return scans, apps, tables


def _check_jpeg_structure(data: bytes, max_scans: int, max_segments: int) -> None:
    max_tables = 4 * max_scans + 64  # DHT/DQT may be redefined before each scan, a few per scan at most
    scans, apps, tables = jpeg_structure(data, stop_after=max(max_scans, max_segments, max_tables))
    over = [
        f"more than {limit} {what}"
        for count, limit, what in (
            (scans, max_scans, "scans"),
            (apps, max_segments, "APPn/COM segments"),
            (tables, max_tables, "table segments"),
        )
        if count > limit
    ]
    if over:
        raise _err(
            "media.too_complex",
            f"The JPEG has {' and '.join(over)}; a photo has about 10 of each, and decoding this one would cost "
            "far more than its size.",
            scans=scans,
            app_segments=apps,
            table_segments=tables,
            max_scans=max_scans,
            max_segments=max_segments,
        )


def _truncated(data: bytes, fmt: str | None) -> bool:
    """Structural end-of-file checks that do not depend on ``ImageFile.LOAD_TRUNCATED_IMAGES``."""
    if fmt in _JPEG_FORMATS:
        return not _jpeg_complete(data)
    if fmt == "PNG":
        return not _png_complete(data)
    if fmt == "WEBP":
        return len(data) < 8 + int.from_bytes(data[4:8], "little")
    if fmt == "BMP":
        return len(data) < int.from_bytes(data[2:6], "little")
    return False


def _check_limits(width: int, height: int, max_pixels: int, max_dimension: int) -> None:
    if width * height > max_pixels:
        raise _err(
            "media.decompression_bomb",
            f"The image is {width}×{height} ({width * height} pixels); the limit is {max_pixels}.",
            width=width,
            height=height,
            max_pixels=max_pixels,
        )
    if max(width, height) > max_dimension:
        raise _err(
            "media.too_large",
            f"The image is {width}×{height}; the longest side allowed is {max_dimension}.",
            width=width,
            height=height,
            max_dimension=max_dimension,
        )


def exif_orientation(img: Image.Image) -> int:
    """The EXIF Orientation tag (1–8), or 1 when absent or invalid."""
    try:
        value = img.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block is not our caller's problem
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def probe(
    data: bytes,
    *,
    max_pixels: int = MAX_PIXELS,
    max_dimension: int = MAX_DIMENSION,
    max_bytes: int = MAX_BYTES,
    max_jpeg_scans: int = MAX_JPEG_SCANS,
    max_jpeg_segments: int = MAX_JPEG_SEGMENTS,
) -> Image.Image:
    """Open ``data`` and check its header (and a JPEG's marker structure) against the limits, decoding nothing.
    Returns the lazy image; its ``size`` is what a decode would allocate (see :func:`prepare`)."""
    if not isinstance(data, bytes):
        data = bytes(data)  # bytearray / memoryview
    if not data:
        raise _err("media.empty", "The file is empty.")
    if len(data) > max_bytes:
        raise _err(
            "media.too_large",
            f"The file is {len(data)} bytes; the limit is {max_bytes}.",
            bytes=len(data),
            max_bytes=max_bytes,
        )
    magic = _magic(data)
    size = _header_size(data, magic)
    if size is not None:
        _check_limits(size[0], size[1], max_pixels, max_dimension)
    if magic == "JPEG":
        _check_jpeg_structure(data, max_jpeg_scans, max_jpeg_segments)
    try:
        # No warnings.catch_warnings() here: it is not thread-safe. With max_pixels at or below Pillow's
        # limit, any image that makes Pillow warn is refused by our own check anyway.
        img = Image.open(io.BytesIO(data), formats=_formats())
    except Image.DecompressionBombError as exc:
        raise _err(
            "media.decompression_bomb", "The image claims too many pixels to decode safely.", reason=str(exc)
        ) from None
    except UnidentifiedImageError:
        if magic is not None:  # one of our formats, but its header could not be parsed
            if _truncated(data, magic) or len(data) < 64:
                raise _err("media.truncated", "The image file ends early.") from None
            raise _err("media.corrupt", f"The {magic} header is malformed.") from None
        raise _err(
            "media.unsupported_format", "Not an image format Safehold decodes (JPEG, PNG, GIF, WebP, TIFF, BMP)."
        ) from None
    except (
        EOFError,
        struct.error,
        IndexError,
        SyntaxError,
        ValueError,
        OSError,
        TypeError,
        ZeroDivisionError,
        KeyError,
        zlib.error,
    ) as exc:
        # The header parser itself failed: cut short if it ran out of data, otherwise malformed.
        if isinstance(exc, EOFError) or "truncated" in str(exc).lower() or _truncated(data, magic):
            raise _err("media.truncated", "The image file ends early.") from None
        raise _err("media.corrupt", "The image header is malformed.", reason=type(exc).__name__) from None
    width, height = img.size
    if width <= 0 or height <= 0:
        raise _err("media.corrupt", "The image has no pixels.", width=width, height=height)
    _check_limits(width, height, max_pixels, max_dimension)
    return img


def load_image(
    data: bytes,
    *,
    max_pixels: int = MAX_PIXELS,
    draft: tuple[int, int] | None = None,
    draft_mode: str = "RGB",
    exif_transpose: bool = False,
    max_dimension: int = MAX_DIMENSION,
    max_bytes: int = MAX_BYTES,
    max_jpeg_scans: int = MAX_JPEG_SCANS,
    max_jpeg_segments: int = MAX_JPEG_SEGMENTS,
) -> Image.Image:
    """Decode the first frame of ``data`` safely; see the module docstring for the error codes.

    ``draft``: for JPEG only, let libjpeg scale down by 1/2, 1/4 or 1/8 *while decoding* (DCT-domain scaling)
    to the smallest size that is still at least ``draft`` (width, height); ``draft_mode`` ``"L"`` additionally
    decodes only the luma plane of a colour JPEG. Other formats ignore both. The returned image keeps Pillow's
    mode (``RGB``, ``RGBA``, ``P``, ``I;16``, …); use :func:`to_array` for hash-ready pixels.

    This is :func:`prepare` then :func:`decode`; call those two yourself to act on the size in between (e.g.
    to reserve memory for it).
    """
    img = prepare(
        data,
        max_pixels=max_pixels,
        draft=draft,
        draft_mode=draft_mode,
        max_dimension=max_dimension,
        max_bytes=max_bytes,
        max_jpeg_scans=max_jpeg_scans,
        max_jpeg_segments=max_jpeg_segments,
    )
    return decode(img, exif_transpose=exif_transpose)


def prepare(
    data: bytes,
    *,
    max_pixels: int = MAX_PIXELS,
    draft: tuple[int, int] | None = None,
    draft_mode: str = "RGB",
    max_dimension: int = MAX_DIMENSION,
    max_bytes: int = MAX_BYTES,
    max_jpeg_scans: int = MAX_JPEG_SCANS,
    max_jpeg_segments: int = MAX_JPEG_SEGMENTS,
) -> Image.Image:
    """:func:`probe` plus the truncation check and the JPEG draft: every check that needs no pixels. The
    returned lazy image's ``size`` is the size :func:`decode` will allocate (the draft's, for a scaled JPEG)."""
    if not isinstance(data, bytes):
        data = bytes(data)
    img = probe(
        data,
        max_pixels=max_pixels,
        max_dimension=max_dimension,
        max_bytes=max_bytes,
        max_jpeg_scans=max_jpeg_scans,
        max_jpeg_segments=max_jpeg_segments,
    )
    fmt = img.format
    if _truncated(data, fmt):
        raise _err("media.truncated", f"The {fmt} file ends early.")
    if fmt in _JPEG_FORMATS:
        if draft is not None:
            try:
                img.draft(draft_mode if img.mode in ("RGB", "L", "YCbCr") else None, draft)
            except Exception:  # noqa: BLE001 - draft is an optimisation only
                pass
    return img


def decode(img: Image.Image, *, exif_transpose: bool = False) -> Image.Image:
    """Decode the first frame of an image from :func:`prepare`, mapping every decoder failure to a code."""
    try:
        img.seek(0)
        img.load()
    except Image.DecompressionBombError as exc:
        raise _err(
            "media.decompression_bomb", "The image claims too many pixels to decode safely.", reason=str(exc)
        ) from None
    except MemoryError:
        raise _err("media.too_large", "The image needs too much memory to decode.") from None
    except Exception as exc:  # noqa: BLE001 - decoders raise anything on hostile input; we map all of it
        msg = str(exc).lower()
        if isinstance(exc, EOFError) or "truncated" in msg or "premature end" in msg or "not enough" in msg:
            raise _err("media.truncated", "The image file ends early.") from None
        raise _err("media.corrupt", "The image data is corrupt.", reason=type(exc).__name__) from None
    if exif_transpose:
        try:
            img = ImageOps.exif_transpose(img)
        except Exception:  # noqa: BLE001 - a broken EXIF block leaves the pixels as stored
            pass
    return img


def to_array(img: Image.Image) -> np.ndarray:
    """Hash-ready pixels: ``uint8`` (H, W) for grey images or (H, W, 3) RGB for everything else.

    Alpha is dropped, not composited: a transparent pixel hashes as the colour stored under it. That is what
    the reference C++ (first three channels) and HMA/pdqhash (``RGBA`` arrays, channels 0–2) do, so our hashes
    of transparent images stay comparable with theirs. Palette images use their palette colours (HMA hashes
    the palette *indices*, a known defect we do not copy). 16-bit images are scaled to 8 bits (÷257, rounded);
    32-bit integer and float images are clipped to 0–255 as Pillow does.
    """
    mode = img.mode
    if mode == "RGB":
        return np.asarray(img)
    if mode == "L":
        return np.asarray(img)
    if mode in ("RGBA", "RGBX", "RGBa"):
        return np.asarray(img)[:, :, :3]
    if mode in ("LA", "La"):
        return np.asarray(img)[:, :, 0]
    if mode == "1":
        return np.asarray(img.convert("L"))
    if mode in ("P", "PA"):
        return np.asarray(img.convert("RGBA"))[:, :, :3]
    if mode.startswith("I;16"):
        a = np.asarray(img).astype(np.uint32)
        return ((a + 128) // 257).astype(np.uint8)
    if mode in ("I", "F"):
        a = np.asarray(img, dtype=np.float64)
        return np.clip(np.rint(a), 0, 255).astype(np.uint8)
    try:
        return np.asarray(img.convert("RGB"))
    except Exception:  # noqa: BLE001 - e.g. LAB without a colour-management profile
        raise _err("media.unsupported_format", f"Images in colour mode {mode} are not supported.", mode=mode) from None
