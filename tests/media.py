"""Benign synthetic test media: smooth random 'photos' (no people, nothing real), and their variants."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw


def photo(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A photo-like RGB image: smooth colour fields, a few shapes and sensor-like noise."""
    rng = np.random.default_rng(seed)
    w, h = size
    base = rng.random((6, 8, 3)) * 255
    img = Image.fromarray(base.astype(np.uint8), "RGB").resize((w, h), Image.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, w - 10)), int(rng.integers(0, h - 10))
        x1, y1 = x0 + int(rng.integers(10, w // 2)), y0 + int(rng.integers(10, h // 2))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x0, y0, x1, y1], fill=colour)
    arr = np.asarray(img).astype(np.int16) + rng.normal(0, 4, (h, w, 3)).astype(np.int16)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def encode(img: Image.Image, fmt: str = "JPEG", **kw) -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG":
        kw.setdefault("quality", 90)
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def jpeg(seed: int, size: tuple[int, int] = (640, 480), quality: int = 90) -> bytes:
    return encode(photo(seed, size), "JPEG", quality=quality)


def variant(data: bytes, *, scale: float = 0.6, quality: int = 70, fmt: str = "JPEG") -> bytes:
    """A re-encoded, resized copy: what a re-upload of the same picture looks like."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    img = img.resize((max(1, int(img.width * scale)), max(1, int(img.height * scale))), Image.LANCZOS)
    return encode(img, fmt, **({"quality": quality} if fmt == "JPEG" else {}))


def ffmpeg(out, *args) -> bytes:
    """Run ffmpeg to make a synthetic test video (lavfi sources: test patterns, fractals); returns its bytes."""
    import shutil
    import subprocess

    exe = shutil.which("ffmpeg")
    if exe is None:
        import pytest

        pytest.skip("ffmpeg is not installed: cannot generate test videos")
    subprocess.run([exe, "-v", "error", "-y", *args, str(out)], check=True, timeout=60)
    return out.read_bytes()


H264 = ("-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "ultrafast")


def ellipses(seed: int = 7, size: tuple[int, int] = (160, 120)) -> bytes:
    """A benign generated picture (coloured ellipses on a plain ground) as PNG: a banked image for video tests."""
    import random

    rnd = random.Random(seed)
    img = Image.new("RGB", size, (30, 60, 90))
    draw = ImageDraw.Draw(img)
    for _ in range(25):
        x, y = rnd.randint(0, size[0] - 10), rnd.randint(0, size[1] - 10)
        fill = tuple(rnd.randint(0, 255) for _ in range(3))
        draw.ellipse([x, y, x + rnd.randint(10, 60), y + rnd.randint(10, 60)], fill=fill)
    return encode(img, "PNG")
