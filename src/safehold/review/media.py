"""What a reviewer's browser may receive before and after a reveal: safe previews, content types, metadata.

A preview is made on the server from a tiny greyscale copy of the picture (at most ``PREVIEW_DETAIL`` pixels on
its long side), scaled up and blurred: shapes and overall layout remain, so a reviewer can orient themselves,
but no detail survives, whatever the browser does with the file. Videos give their first frame (ffmpeg, with a
time limit); anything that cannot be decoded gives a neutral placeholder instead of an error, because the
reviewer can still choose to reveal it.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

from PIL import ExifTags, Image, ImageDraw, ImageFilter, ImageOps

from safehold.errors import SafeholdError
from safehold.signals.image import load_image, probe
from safehold.signals.media import sniff, sniff_format

#: Longest side of a preview, in pixels.
PREVIEW_SIZE = 320
#: Longest side of the copy a preview is made from: all the detail a preview can ever hold.
PREVIEW_DETAIL = 24
#: Blur radius applied after scaling up (removes the blocks, adds nothing).
PREVIEW_BLUR = 6
FFMPEG_TIMEOUT = 15.0
#: Longest text value shown in a metadata view; longer (binary maker notes, thumbnails) is summarised.
MAX_VALUE = 256

CONTENT_TYPES = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "tiff": "image/tiff",
    "bmp": "image/bmp",
    "heif": "image/heif",
    "avif": "image/avif",
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "webm": "video/webm",
    "mkv": "video/x-matroska",
    "avi": "video/x-msvideo",
    "mpegts": "video/mp2t",
    "flv": "video/x-flv",
    "mpeg": "video/mpeg",
    "asf": "video/x-ms-asf",
    "ogg": "video/ogg",
}


def content_type(data: bytes, filename: str | None = None) -> str:
    """The MIME type of stored media, from its magic bytes; unknown content is served as opaque bytes."""
    return CONTENT_TYPES.get(sniff_format(data, filename) or "", "application/octet-stream")


def kind(data: bytes, media_type: str | None, filename: str | None = None) -> str:
    """``image``, ``video`` or ``other``: the bytes decide, the recorded media type is the fallback."""
    found = sniff(data, filename)
    return found if found != "other" else (media_type if media_type in ("image", "video") else "other")


def preview(data: bytes, media_type: str | None = None, filename: str | None = None) -> tuple[bytes, str]:
    """A blurred greyscale JPEG of at most ``PREVIEW_SIZE`` pixels, or a placeholder PNG."""
    what = kind(data, media_type, filename)
    try:
        small = _image_detail(data) if what == "image" else _video_detail(data) if what == "video" else None
    except (SafeholdError, OSError, ValueError):  # undecodable: the reviewer may still reveal it
        small = None
    if small is None:
        return placeholder(what), "image/png"
    return _blur_up(small), "image/jpeg"


def _image_detail(data: bytes) -> Image.Image:
    img = load_image(data, draft=(PREVIEW_DETAIL * 4, PREVIEW_DETAIL * 4), draft_mode="L", exif_transpose=True)
    return _shrink(img)


def _shrink(img: Image.Image) -> Image.Image:
    grey = ImageOps.grayscale(img.convert("RGB") if img.mode not in ("L", "RGB") else img)
    grey.thumbnail((PREVIEW_DETAIL, PREVIEW_DETAIL), Image.Resampling.BOX)
    return grey


def _blur_up(small: Image.Image) -> bytes:
    w, h = small.size
    scale = PREVIEW_SIZE / max(w, h)
    big = small.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR)
    big = big.filter(ImageFilter.GaussianBlur(PREVIEW_BLUR))
    buf = io.BytesIO()
    big.save(buf, "JPEG", quality=70)
    return buf.getvalue()


def _video_detail(data: bytes) -> Image.Image | None:
    """The first frame, already reduced to preview detail by ffmpeg (the clear frame is never written out)."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        return None
    scale = f"scale={PREVIEW_DETAIL}:{PREVIEW_DETAIL}:force_original_aspect_ratio=decrease,format=gray"
    with tempfile.TemporaryDirectory(prefix="safehold-preview-") as tmp:
        src = Path(tmp) / "input"
        src.write_bytes(data)
        cmd = [exe, "-v", "error", "-nostdin", "-i", str(src), "-an", "-sn", "-dn", "-frames:v", "1", "-vf", scale]
        cmd += ["-f", "image2pipe", "-c:v", "png", "-"]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=FFMPEG_TIMEOUT, check=False)
        except (subprocess.TimeoutExpired, OSError):
            return None
    if proc.returncode != 0 or not proc.stdout:
        return None
    try:
        return _shrink(load_image(proc.stdout))
    except SafeholdError:
        return None


@lru_cache(maxsize=4)
def placeholder(what: str) -> bytes:
    """A neutral grey tile (with a play mark for videos): shown when no safe preview can be made."""
    img = Image.new("L", (PREVIEW_SIZE, PREVIEW_SIZE * 3 // 4), 128)
    if what == "video":
        cx, cy = img.width // 2, img.height // 2
        ImageDraw.Draw(img).polygon([(cx - 24, cy - 30), (cx - 24, cy + 30), (cx + 30, cy)], fill=170)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


# ------------------------------------------------------------------ metadata


def metadata(data: bytes, media_type: str | None = None, filename: str | None = None) -> dict:
    """EXIF (images) or container tags (videos) as plain JSON, for investigators: camera, time, GPS, software."""
    what = kind(data, media_type, filename)
    out: dict = {"media": what, "content_type": content_type(data, filename), "size": len(data)}
    if what == "image":
        out.update(_image_metadata(data))
    elif what == "video":
        out.update(_video_metadata(data))
    return out


def _image_metadata(data: bytes) -> dict:
    try:
        img = probe(data)  # header only: no pixel is decoded to read metadata
    except SafeholdError as exc:
        return {"error": exc.code}
    out: dict = {"format": img.format, "width": img.width, "height": img.height, "mode": img.mode}
    try:
        exif = img.getexif()
        out["exif"] = _tags(exif, ExifTags.TAGS)
        for ifd, name, names in (
            (ExifTags.IFD.Exif, "exif_ifd", ExifTags.TAGS),
            (ExifTags.IFD.GPSInfo, "gps", ExifTags.GPSTAGS),
        ):
            found = exif.get_ifd(ifd)
            if found:
                out[name] = _tags(found, names)
    except Exception:  # noqa: BLE001 - a malformed EXIF block is reported, not raised
        out["exif_error"] = "The EXIF block could not be read."
    return out


def _tags(tags, names: dict) -> dict:
    pointers = {int(ExifTags.IFD.Exif), int(ExifTags.IFD.GPSInfo), int(ExifTags.IFD.Interop)}
    return {str(names.get(k, k)): _plain(v) for k, v in tags.items() if int(k) not in pointers}


def _plain(value):
    """A JSON-safe, bounded rendering of an EXIF value (rationals as numbers, bytes as text or a size)."""
    if isinstance(value, bytes):
        text = value.rstrip(b"\x00")
        if len(text) <= MAX_VALUE and all(32 <= c < 127 for c in text):
            return text.decode("ascii")
        return f"<{len(value)} bytes>"
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value[:64]]
    if isinstance(value, str):
        return value[:MAX_VALUE]
    if isinstance(value, bool | int | float) or value is None:
        return value
    try:
        return float(value)  # IFDRational
    except (TypeError, ValueError, ZeroDivisionError):
        return str(value)[:MAX_VALUE]


def _video_metadata(data: bytes) -> dict:
    exe = shutil.which("ffprobe")
    if exe is None:
        return {"error": "ffprobe is not installed"}
    with tempfile.TemporaryDirectory(prefix="safehold-probe-") as tmp:
        src = Path(tmp) / "input"
        src.write_bytes(data)
        cmd = [exe, "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(src)]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=FFMPEG_TIMEOUT, check=False)
        except (subprocess.TimeoutExpired, OSError):
            return {"error": "The video could not be probed."}
    try:
        info = json.loads(proc.stdout or b"{}")
    except ValueError:
        info = {}
    fmt = info.get("format") or {}
    if proc.returncode != 0 or not fmt:
        return {"error": "The video could not be probed."}
    keep = ("codec_type", "codec_name", "width", "height", "duration", "r_frame_rate", "tags")
    return {
        "format": fmt.get("format_name"),
        "duration": fmt.get("duration"),
        "tags": {str(k): _plain(v) for k, v in (fmt.get("tags") or {}).items()},
        "streams": [{k: s[k] for k in keep if k in s} for s in info.get("streams", [])],
    }
