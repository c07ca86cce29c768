"""A test plug-in shaped like PhotoDNA: a 144-byte vector compared by Euclidean (L2) distance.

Not PhotoDNA: the "hash" is the 12 × 12 greyscale thumbnail of an image, which is enough to prove that a licensed
hash of that shape can be installed as a package and match through every door of Safehold. The tests install
this module with a ``*.dist-info`` declaring the ``safehold.signals`` entry point, as pip would.
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import ClassVar

from PIL import Image

from safehold.errors import SafeholdError
from safehold.matching.vector_index import VectorIndex
from safehold.signals.base import ContentHasher, Signal, SignalType
from safehold.signals.plugins import SignalPlugin

SIZE = 144


class PhotoDnaLikeIndex(VectorIndex):
    dim = SIZE
    metric = "l2"


class PhotoDnaLikeSignal(SignalType):
    name: ClassVar[str] = "photodna_like"
    description: ClassVar[str] = "Test hash shaped like PhotoDNA: 144 bytes (hex or base64), L2 distance"
    matching = "distance"
    default_threshold = 100
    max_threshold = 3060  # 255 × √144: the largest L2 distance of two 144-byte vectors
    perceptual_for = ("image",)
    aliases = ("photodna",)

    @classmethod
    def normalize(cls, value: str) -> str:
        v = value.strip() if isinstance(value, str) else ""
        raw: bytes | None = None
        if len(v) == 2 * SIZE:
            try:
                raw = bytes.fromhex(v)
            except ValueError:
                raw = None
        if raw is None:
            try:
                raw = base64.b64decode(v, validate=True)
            except (binascii.Error, ValueError):
                raw = None
        if raw is None or len(raw) != SIZE:
            raise SafeholdError(
                "signal.invalid_value", f"a {cls.name} value is {SIZE} bytes in hex or base64",
                detail={"type": cls.name},
            )  # fmt: skip
        return raw.hex()

    @classmethod
    def index_cls(cls):
        return PhotoDnaLikeIndex

    @classmethod
    def distance(cls, a: str, b: str) -> int:
        import numpy as np

        x, y = (np.frombuffer(bytes.fromhex(cls.normalize(v)), np.uint8).astype(np.int32) for v in (a, b))
        return int(round(float(np.sqrt(((x - y) ** 2).sum()))))


class PhotoDnaLikeHasher(ContentHasher):
    media: ClassVar[str] = "image"
    signal_types: ClassVar[tuple[str, ...]] = ("photodna_like",)

    def hash_bytes(self, data: bytes) -> list[Signal]:
        try:
            with Image.open(io.BytesIO(data)) as img:
                thumb = img.convert("L").resize((12, 12), Image.Resampling.BOX)
        except Exception as e:  # noqa: BLE001 - any decoder error: this content has no such hash
            raise SafeholdError("media.unreadable", f"photodna_like cannot read this image: {e}") from None
        return [Signal(type="photodna_like", value=thumb.tobytes().hex())]


PLUGIN = SignalPlugin(
    name="photodna_like",
    signal_types=(PhotoDnaLikeSignal,),
    hashers=(PhotoDnaLikeHasher,),
    version="1.0.0",
)
