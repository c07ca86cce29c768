"""The hashers driven once with small benign images, so their numba kernels are compiled (or loaded from the
on-disk cache) before real content arrives.

:mod:`safehold.warmup` runs this after installing; the fork server of :mod:`safehold.signals.isolation`
imports :mod:`safehold.signals.forkserver`, which runs it, so that every child forked to hash a large image
starts with its kernels loaded (loading them costs about a second per process).
"""

from __future__ import annotations

import io


def _image_bytes(fmt: str, mode: str = "RGB") -> bytes:
    """A small synthetic picture (colour gradients and a rectangle) in PIL ``mode``, encoded as ``fmt``."""
    import numpy as np
    from PIL import Image, ImageDraw

    y, x = np.mgrid[0:240, 0:320]
    rgb = np.stack([x * 255 // 320, y * 255 // 240, (x + y) * 255 // 560], axis=-1).astype(np.uint8)
    img = Image.fromarray(rgb, "RGB")
    ImageDraw.Draw(img).rectangle([60, 40, 200, 160], fill=(200, 40, 90))
    buf = io.BytesIO()
    img.convert(mode).save(buf, fmt)
    return buf.getvalue()


def warm_hashers() -> None:
    """Hash one image of each pixel layout in every PDQ mode, with and without the dihedral variants."""
    from safehold.signals.pdq import MODES, PdqHasher

    # colour and greyscale JPEG, colour and palette PNG: each decodes to a different pixel layout
    for fmt, pil_mode in (("JPEG", "RGB"), ("JPEG", "L"), ("PNG", "RGBA"), ("PNG", "P")):
        data = _image_bytes(fmt, pil_mode)
        for mode in MODES:
            for dihedral in (False, True):
                PdqHasher(mode, dihedral).hash_bytes(data)
