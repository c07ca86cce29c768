"""Safe decoding: every mode and format we accept, and a stable error code for everything we refuse."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFile

from safehold.errors import SafeholdError
from safehold.signals.image import exif_orientation, load_image, probe, to_array


def photo(seed: int = 1, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """Benign photo-like RGB image: smooth colour field, shapes, noise."""
    rng = np.random.default_rng(seed)
    w, h = size
    img = Image.fromarray((rng.random((5, 7, 3)) * 255).astype(np.uint8), "RGB").resize((w, h), Image.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(5):
        x0, y0 = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
        x1, y1 = x0 + int(rng.integers(10, w // 2)), y0 + int(rng.integers(10, h // 2))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x0, y0, x1, y1], fill=colour)
    arr = np.asarray(img).astype(np.int16) + rng.normal(0, 3, (h, w, 3)).astype(np.int16)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def flat_scene(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """Flat-colour shapes (GIF-friendly: few colours, so palette quantisation changes little)."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", size, tuple(int(c) for c in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(img)
    for _ in range(8):
        x0, y0 = int(rng.integers(0, size[0] - 40)), int(rng.integers(0, size[1] - 40))
        x1, y1 = x0 + int(rng.integers(20, size[0] // 2)), y0 + int(rng.integers(20, size[1] // 2))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(
            [x0, y0, x1, y1], fill=tuple(int(c) for c in rng.integers(0, 255, 3))
        )
    return img


def encode(img: Image.Image, fmt: str = "JPEG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def code_of(data: bytes, **kw) -> str:
    with pytest.raises(SafeholdError) as ei:
        load_image(data, **kw)
    return ei.value.code


def png_header(width: int, height: int, *, with_end: bool = False) -> bytes:
    """A PNG signature and IHDR claiming ``width``×``height`` RGB, with no (or an empty) image data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    if with_end:
        out += chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    return out


# --- formats and modes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF"])
def test_formats_decode(fmt):
    img = load_image(encode(photo(), fmt))
    assert img.size == (320, 240)
    arr = to_array(img)
    assert arr.dtype == np.uint8 and arr.shape[:2] == (240, 320)


def _mode_image(mode: str) -> Image.Image:
    base = photo(2)
    if mode == "P+transparency":
        p = base.convert("P", palette=Image.Palette.ADAPTIVE)
        p.info["transparency"] = 0
        return p
    if mode == "I;16":
        a = np.asarray(base.convert("L")).astype("<u2") * 257
        return Image.frombytes("I;16", base.size, a.tobytes())
    if mode == "I":
        return Image.fromarray(np.asarray(base.convert("L")).astype(np.int32))
    if mode == "F":
        return Image.fromarray(np.asarray(base.convert("L")).astype(np.float32))
    if mode == "RGBA":
        im = base.convert("RGBA")
        im.putalpha(128)
        return im
    return base.convert(mode)


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [("RGB", "PNG"), ("RGBA", "PNG"), ("LA", "PNG"), ("L", "PNG"), ("P", "PNG"), ("P+transparency", "PNG"),
     ("1", "PNG"), ("1", "BMP"), ("I;16", "PNG"), ("I", "TIFF"), ("F", "TIFF"), ("CMYK", "JPEG"),
     ("CMYK", "TIFF"), ("RGBA", "WEBP"), ("LA", "WEBP"), ("YCbCr", "TIFF"), ("P", "GIF")],
)  # fmt: skip
def test_every_mode_hashes_close_to_the_rgb_original(mode, fmt):
    from safehold.signals.pdq import hamming, hash_pixels

    data = encode(_mode_image(mode), fmt)
    arr = to_array(load_image(data))
    assert arr.dtype == np.uint8 and arr.ndim in (2, 3) and arr.shape[:2] == (240, 320)
    h, q = hash_pixels(arr)
    ref, _ = hash_pixels(np.asarray(photo(2)))
    # Same picture whatever the mode: well inside the 31-bit threshold (1-bit dithering is the roughest).
    assert hamming(h, ref) <= (40 if mode == "1" else 24), (mode, fmt)


def test_alpha_is_dropped_not_composited():
    rgba = photo(3).convert("RGBA")
    rgba.putalpha(0)  # fully transparent: the colours underneath are still what we hash (as HMA does)
    arr = to_array(load_image(encode(rgba, "PNG")))
    assert np.array_equal(arr, np.asarray(photo(3)))


def test_16_bit_is_scaled_not_clipped():
    a = np.full((20, 20), 40000, "<u2")
    arr = to_array(load_image(encode(Image.frombytes("I;16", (20, 20), a.tobytes()), "PNG")))
    assert arr.dtype == np.uint8 and int(arr[0, 0]) == round(40000 / 257)


def test_exif_orientation_kept_by_default_and_applied_on_request():
    img = photo(4, (300, 200))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    data = encode(img, "JPEG", exif=exif.tobytes(), quality=95)
    stored = load_image(data)
    assert stored.size == (300, 200) and exif_orientation(stored) == 6
    shown = load_image(data, exif_transpose=True)
    assert shown.size == (200, 300)
    assert exif_orientation(load_image(encode(img, "JPEG"))) == 1


def test_animated_gif_and_webp_use_the_first_frame():
    from safehold.signals.pdq import hamming, hash_pixels

    frames = [flat_scene(10), flat_scene(11), flat_scene(12)]
    for fmt in ("GIF", "WEBP"):
        kw = {"lossless": True} if fmt == "WEBP" else {}
        data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, **kw)
        img = load_image(data)
        assert getattr(img, "n_frames", 1) == 3
        h, _ = hash_pixels(to_array(img))
        assert hamming(h, hash_pixels(np.asarray(frames[0]))[0]) <= 16, fmt
        assert hamming(h, hash_pixels(np.asarray(frames[1]))[0]) > 31, fmt


def test_jpeg_draft_scales_while_decoding():
    data = encode(photo(5, (2000, 1500)), "JPEG")
    assert load_image(data, draft=(256, 256)).size == (500, 375)
    assert load_image(data, draft=(512, 512)).size == (1000, 750)
    assert load_image(data).size == (2000, 1500)
    assert load_image(encode(photo(5, (2000, 1500)), "PNG"), draft=(256, 256)).size == (2000, 1500)


# --- refusals ---------------------------------------------------------------------------------------------


def test_empty_and_random_bytes():
    assert code_of(b"") == "media.empty"
    assert code_of(np.random.default_rng(0).bytes(5000)) == "media.unsupported_format"
    assert code_of(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n") == "media.unsupported_format"
    assert code_of(b"8BPS\x00\x01" + b"\x00" * 40) == "media.unsupported_format"  # PSD: never handed to Pillow


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"])
def test_truncated(fmt):
    data = encode(photo(6), fmt)
    cut = data[: len(data) * 2 // 3]
    expected = {"media.truncated", "media.corrupt"} if fmt in ("GIF", "TIFF") else {"media.truncated"}
    assert code_of(cut) in expected
    assert code_of(data[:40]) in {"media.truncated", "media.corrupt"}  # cut inside the header


def test_truncated_refused_even_if_pillow_is_told_to_pad(monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    for fmt in ("JPEG", "PNG", "WEBP", "BMP"):
        data = encode(photo(7), fmt)
        assert code_of(data[: len(data) // 2]) == "media.truncated", fmt
    assert load_image(encode(photo(7), "JPEG")).size == (320, 240)


def test_corrupt_png_data():
    data = bytearray(encode(photo(8), "PNG"))
    at = data.index(b"IDAT") + 40
    data[at : at + 200] = bytes(200)  # zeroed compressed data: CRC and zlib both fail
    assert code_of(bytes(data)) == "media.corrupt"
    assert code_of(png_header(10, 10) + b"\x00\x00\x00\x05IDATxxxxx" + b"\x00" * 8 + b"IEND") == "media.corrupt"


def test_decompression_bomb_checked_from_the_header():
    assert code_of(png_header(100_000, 100_000, with_end=True)) == "media.decompression_bomb"
    assert code_of(png_header(8000, 8000, with_end=True)) == "media.decompression_bomb"  # 64 MP > 50 MP
    assert code_of(png_header(3000, 3000, with_end=True), max_pixels=1_000_000) == "media.decompression_bomb"
    with pytest.raises(SafeholdError) as ei:
        probe(png_header(100_000, 100_000))
    assert ei.value.code == "media.decompression_bomb" and ei.value.status == 413


def test_too_large():
    assert code_of(png_header(40_000, 10, with_end=True)) == "media.too_large"
    assert code_of(encode(photo(9), "PNG"), max_bytes=1000) == "media.too_large"
    assert code_of(encode(photo(9), "PNG"), max_dimension=100) == "media.too_large"


def test_bytes_like_input():
    data = encode(photo(13), "PNG")
    assert load_image(bytearray(data)).size == load_image(memoryview(data)).size == (320, 240)


def test_error_has_message_and_dict():
    with pytest.raises(SafeholdError) as ei:
        load_image(b"not an image at all")
    d = ei.value.to_dict()
    assert d["code"] == "media.unsupported_format" and "JPEG" in d["message"]


def tiff_header(width: int, height: int) -> bytes:
    """A little-endian grey TIFF whose IFD claims ``width``×``height`` (one strip, no real pixel data)."""
    entries = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, 200),
               (278, 4, height), (279, 4, width * height & 0xFFFFFFFF)]  # fmt: skip
    ifd = struct.pack("<H", len(entries))
    for tag, kind, value in entries:
        ifd += struct.pack("<HHI", tag, kind, 1) + (
            struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
        )
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + bytes(64)


def test_tiff_limits_checked_before_decoding():
    assert code_of(tiff_header(100_000, 100_000)) == "media.decompression_bomb"
    assert code_of(tiff_header(8000, 8000)) == "media.decompression_bomb"
    assert code_of(tiff_header(40_000, 10)) == "media.too_large"
    assert code_of(tiff_header(100, 100)) in ("media.truncated", "media.corrupt")
