"""What kind of media a blob is, decided from its first bytes, and the size limit for blobs.

:func:`sniff` looks at magic bytes only — never at the file name first — so a video renamed ``.jpg`` is
still a video. The file name is a fallback for content whose magic is inconclusive. :func:`sniff_format`
gives the specific container (``"png"``, ``"mp4"``, …) for callers that need it (e.g. to name a
temporary file).
"""

from __future__ import annotations

import os
from typing import Literal

from safehold.errors import SafeholdError

MediaKind = Literal["image", "video", "other"]

#: Default largest blob Safehold hashes (256 MiB). Callers pass their configured limit to :func:`check_size`.
MAX_BYTES = 256 * 1024 * 1024

# ISO base media file format (``ftyp`` box) brands.
_IMAGE_BRANDS = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"mif2", b"msf1",
     b"avif",     b"avis", b"avio", b"jpeg", b"jpgs"}
)  # fmt: skip
_AUDIO_BRANDS = frozenset({b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "})
# QuickTime files written without an ``ftyp`` box start with one of these top-level atoms.
_QT_ATOMS = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})

_IMAGE_EXT = {
    ".jpg": "jpeg", ".jpeg": "jpeg", ".jpe": "jpeg", ".jfif": "jpeg", ".png": "png", ".gif": "gif",
    ".webp": "webp", ".tif": "tiff", ".tiff": "tiff", ".bmp": "bmp", ".dib": "bmp", ".heic": "heif",
    ".heif": "heif", ".avif": "avif",
}  # fmt: skip
_VIDEO_EXT = {
    ".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".qt": "mov", ".3gp": "mp4", ".3g2": "mp4", ".webm": "webm",
    ".mkv": "mkv", ".avi": "avi", ".ts": "mpegts", ".m2ts": "mpegts", ".mts": "mpegts", ".flv": "flv",
    ".mpg": "mpeg", ".mpeg": "mpeg", ".wmv": "asf", ".asf": "asf", ".ogv": "ogg",
}  # fmt: skip

_VIDEO_FORMATS = frozenset({"mp4", "mov", "webm", "mkv", "avi", "mpegts", "flv", "mpeg", "asf", "ogg"})
_IMAGE_FORMATS = frozenset({"jpeg", "png", "gif", "webp", "tiff", "bmp", "heif", "avif"})


def _ftyp_format(data: bytes) -> str | None:
    """Classify an ISO-BMFF file (MP4, MOV, HEIF, AVIF, …) from its ``ftyp`` box."""
    if len(data) < 12 or data[4:8] != b"ftyp":
        return None
    box_size = int.from_bytes(data[0:4], "big")
    major = data[8:12]
    end = min(len(data), box_size if 16 <= box_size <= 4096 else 64)
    compatible = {data[i : i + 4] for i in range(16, end - 3, 4)}
    if major in _IMAGE_BRANDS:
        return "avif" if major in (b"avif", b"avis", b"avio") else "heif"
    if major in _AUDIO_BRANDS:
        return "m4a"
    if major == b"qt  ":
        return "mov"
    # A file with a generic major brand but only image brands listed (rare) is still an image.
    if compatible and compatible <= (_IMAGE_BRANDS | {b"iso8", b"miaf", b"MA1A", b"MA1B", b"MiHE", b"MiHB"}):
        return "heif"
    return "mp4"


def _is_bmp(data: bytes) -> bool:
    if len(data) < 26 or data[:2] != b"BM":
        return False
    header_size = int.from_bytes(data[14:18], "little")
    return header_size in (12, 16, 40, 52, 56, 64, 108, 124)


def _is_mpegts(data: bytes) -> bool:
    for packet, offset in ((188, 0), (192, 4), (204, 0)):
        needed = offset + 2 * packet + 1
        if len(data) >= needed and all(data[offset + k * packet] == 0x47 for k in range(3)):
            return True
    return False


def sniff_format(data: bytes, filename: str | None = None) -> str | None:
    """The container format (``"jpeg"``, ``"png"``, ``"mp4"``, ``"webm"``, …) or ``None`` if unknown.

    Magic bytes decide; ``filename``'s extension is only used when the magic is not recognised.
    """
    head = bytes(data[:4096])
    fmt: str | None = None
    if head[:3] == b"\xff\xd8\xff":
        fmt = "jpeg"
    elif head[:8] == b"\x89PNG\r\n\x1a\n":
        fmt = "png"
    elif head[:6] in (b"GIF87a", b"GIF89a"):
        fmt = "gif"
    elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        fmt = "webp"
    elif head[:4] == b"RIFF" and head[8:12] in (b"AVI ", b"AVIX"):
        fmt = "avi"
    elif head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        fmt = "tiff"
    elif _is_bmp(head):
        fmt = "bmp"
    elif head[4:8] == b"ftyp":
        fmt = _ftyp_format(head)
    elif head[4:8] in _QT_ATOMS and int.from_bytes(head[0:4], "big") >= 8:
        fmt = "mov"
    elif head[:4] == b"\x1a\x45\xdf\xa3":
        fmt = "webm" if b"webm" in head[:64] else "mkv"
    elif head[:4] == b"FLV\x01":
        fmt = "flv"
    elif head[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"):
        fmt = "mpeg"
    elif head[:8] == b"\x30\x26\xb2\x75\x8e\x66\xcf\x11":
        fmt = "asf"
    elif head[:4] == b"OggS":
        fmt = "ogg" if b"\x80theora" in head or b"\x80Theora" in head else "ogg-audio"
    elif _is_mpegts(head):
        fmt = "mpegts"
    if fmt is None and filename:
        ext = os.path.splitext(filename)[1].lower()
        fmt = _IMAGE_EXT.get(ext) or _VIDEO_EXT.get(ext)
    return fmt


def sniff(data: bytes, filename: str | None = None) -> MediaKind:
    """``"image"``, ``"video"`` or ``"other"`` for ``data``, by magic bytes (file name as fallback only).

    Images: JPEG, PNG, GIF, WebP, TIFF, BMP, HEIC/HEIF, AVIF. Videos: MP4/MOV/3GP (``ftyp`` brands, bare
    QuickTime atoms), WebM/Matroska, AVI, MPEG-TS, MPEG-PS, FLV, ASF/WMV, Ogg Theora. Audio-only containers
    (M4A, Ogg Vorbis/Opus) are ``"other"``.
    """
    fmt = sniff_format(data, filename)
    if fmt in _IMAGE_FORMATS:
        return "image"
    if fmt in _VIDEO_FORMATS:
        return "video"
    return "other"


def check_size(data: bytes | int, max_bytes: int | None = None) -> int:
    """Return the size of ``data`` (or the given length); raise ``media.too_large`` above ``max_bytes``.

    ``max_bytes=None`` uses :data:`MAX_BYTES`; ``0`` or a negative value disables the limit.
    """
    size = data if isinstance(data, int) else len(data)
    limit = MAX_BYTES if max_bytes is None else max_bytes
    if limit > 0 and size > limit:
        raise SafeholdError(
            "media.too_large",
            f"content is {size} bytes; the limit is {limit} bytes",
            status=413,
            detail={"size": size, "max_bytes": limit},
        )
    return size
