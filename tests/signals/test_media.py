import io
import shutil
import subprocess

import pytest
from PIL import Image

from safehold.errors import SafeholdError
from safehold.signals.media import MAX_BYTES, check_size, sniff, sniff_format


def _pil(fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [("PNG", "png"), ("JPEG", "jpeg"), ("GIF", "gif"), ("WEBP", "webp"), ("TIFF", "tiff"), ("BMP", "bmp")],
)
def test_real_images(fmt, expected):
    data = _pil(fmt)
    assert sniff_format(data) == expected
    assert sniff(data) == "image"


def _ftyp(major: bytes, *compat: bytes) -> bytes:
    body = major + b"\x00\x00\x00\x00" + b"".join(compat)
    return (8 + len(body)).to_bytes(4, "big") + b"ftyp" + body + b"\x00" * 32


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (_ftyp(b"heic", b"mif1", b"heic"), "image"),
        (_ftyp(b"avif", b"avif", b"mif1"), "image"),
        (_ftyp(b"mif1", b"heic"), "image"),
        (_ftyp(b"isom", b"isom", b"iso2", b"avc1", b"mp41"), "video"),
        (_ftyp(b"mp42", b"mp42", b"isom"), "video"),
        (_ftyp(b"qt  ", b"qt  "), "video"),
        (_ftyp(b"3gp5", b"3gp5"), "video"),
        (_ftyp(b"M4A ", b"M4A ", b"mp42"), "other"),  # audio only
        (b"\x00\x00\x00\x08wide" + b"\x00" * 40, "video"),  # bare QuickTime atoms
        (b"\x1a\x45\xdf\xa3\x9fB\x86\x81\x01B\x82\x84webm" + b"\x00" * 20, "video"),
        (b"\x1a\x45\xdf\xa3\xa3B\x86\x81\x01B\x82\x88matroska" + b"\x00" * 20, "video"),
        (b"RIFF\x00\x10\x00\x00AVI LIST" + b"\x00" * 20, "video"),
        (b"FLV\x01\x05\x00\x00\x00\x09" + b"\x00" * 20, "video"),
        ((b"\x47" + b"\x00" * 187) * 4, "video"),  # MPEG-TS sync bytes every 188
        (b"\x00\x00\x01\xba" + b"\x00" * 40, "video"),  # MPEG-PS
        (b"\x30\x26\xb2\x75\x8e\x66\xcf\x11" + b"\x00" * 40, "video"),  # ASF/WMV
        (b"OggS\x00\x02" + b"\x00" * 22 + b"\x80theora" + b"\x00" * 20, "video"),
        (b"OggS\x00\x02" + b"\x00" * 22 + b"\x01vorbis" + b"\x00" * 20, "other"),
        (b"%PDF-1.7\n", "other"),
        (b"PK\x03\x04zip", "other"),
        (b"hello world", "other"),
        (b"", "other"),
        (b"BM", "other"),  # too short to be a BMP
    ],
)
def test_magic_bytes(data, kind):
    assert sniff(data) == kind


def test_filename_is_only_a_fallback():
    png = _pil("PNG")
    # Magic wins over a misleading name...
    assert sniff(png, filename="clip.mp4") == "image"
    # ...the name is used only when the magic is unknown.
    assert sniff(b"\x00\x01\x02 unknown", filename="clip.MP4") == "video"
    assert sniff(b"\x00\x01\x02 unknown", filename="photo.jpeg") == "image"
    assert sniff(b"\x00\x01\x02 unknown", filename="notes.txt") == "other"


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
@pytest.mark.parametrize(
    ("ext", "fmt"),
    [
        ("mp4", "mp4"),
        ("webm", "webm"),
        ("avi", "avi"),
        ("ts", "mpegts"),
        ("flv", "flv"),
        ("mov", "mov"),
        ("mkv", "mkv"),
    ],
)
def test_real_videos(tmp_path, ext, fmt):
    out = tmp_path / f"v.{ext}"
    extra = ["-c:v", "libvpx", "-deadline", "realtime"] if ext == "webm" else []
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "color=c=blue:size=32x32:rate=5",
            "-t",
            "0.4",
            *extra,
            "-pix_fmt",
            "yuv420p",
            str(out),
        ],
        check=True,
        timeout=30,
    )
    data = out.read_bytes()
    assert sniff(data) == "video"
    assert sniff_format(data) == fmt


def test_check_size():
    assert check_size(b"abc", 3) == 3
    assert check_size(10, 0) == 10  # 0 disables the limit
    assert MAX_BYTES >= 1 << 20
    with pytest.raises(SafeholdError) as ei:
        check_size(b"abcd", 3)
    assert ei.value.code == "media.too_large"
    assert ei.value.status == 413
    assert ei.value.detail == {"size": 4, "max_bytes": 3}
