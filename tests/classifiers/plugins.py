"""Test plug-in classifiers, installed through the ``safehold.classifiers`` entry points: ``test_explicit`` (a
label legal for adults, which needs an age signal) scores brightness, ``test_dark`` (a child-abuse label) scores
darkness, so a bright picture hits only the first and a dark one only the second. Benign generated pictures only.
"""

from __future__ import annotations

from typing import ClassVar

from PIL import Image, ImageStat

from safehold import entrypoints
from safehold.classifiers.base import Classifier, Content, ContentKind, Score
from tests.media import encode, photo


def _brightness(content: Content) -> float:
    grey = content.image.convert("L")
    grey.thumbnail((64, 64))
    return round(ImageStat.Stat(grey).mean[0] / 255, 4)


class ExplicitTest(Classifier):
    name = "test_explicit"
    description = "Test only: calls bright pictures explicit."
    version = "2"
    takes: ClassVar[frozenset[ContentKind]] = frozenset(("image",))
    labels = ("explicit",)
    threshold = 0.9

    def classify(self, content: Content) -> list[Score]:
        return [Score("explicit", _brightness(content))]


class DarkTest(Classifier):
    name = "test_dark"
    description = "Test only: calls dark pictures csam."
    takes: ClassVar[frozenset[ContentKind]] = frozenset(("image",))
    labels = ("csam",)
    threshold = 0.9

    def classify(self, content: Content) -> list[Score]:
        return [Score("csam", round(1 - _brightness(content), 4))]


class _EntryPoint:
    def __init__(self, cls: type[Classifier]):
        self.name, self.value, self._cls = cls.name, f"tests:{cls.__name__}", cls

    def load(self) -> type[Classifier]:
        return self._cls


def install(monkeypatch) -> None:
    """Make the test plug-ins the installed classifier plug-ins (SAFEHOLD_CLASSIFIERS still chooses)."""
    eps = [_EntryPoint(ExplicitTest), _EntryPoint(DarkTest)]
    monkeypatch.setattr(entrypoints, "installed", lambda group: eps if group == "safehold.classifiers" else [])


def picture(level: int, seed: int = 11) -> bytes:
    """A photo-like JPEG whose mean brightness is about ``level`` / 255 (200 to 250: bright; under 20: dark)."""
    return encode(Image.eval(photo(seed), lambda v: level + v // 25))


BRIGHT = picture(238)  # brightness ≈ 0.95: an explicit hit at the default threshold
DARK = encode(Image.eval(photo(12), lambda v: v // 25))  # darkness ≈ 0.98: a csam hit
