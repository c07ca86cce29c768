"""``test_brightness``: a built-in classifier that proves the classifier path end to end, and nothing more.

It scores an image by its mean brightness (0 black, 1 white) under the label ``test_bright``: deterministic,
benign, and cheap, so a test (or an operator trying the path) can make a hit with a white picture. Off unless
``SAFEHOLD_CLASSIFIERS`` names it. Real classifiers come as plug-ins (docs/architecture.md).
"""

from __future__ import annotations

from typing import ClassVar

from PIL import ImageStat

from safehold.classifiers.base import Classifier, Content, ContentKind, Score


class BrightnessClassifier(Classifier):
    name = "test_brightness"
    description = "Test only: scores an image by its mean brightness."
    version = "1"
    takes: ClassVar[frozenset[ContentKind]] = frozenset(("image", "video_frame"))
    labels = ("test_bright",)
    threshold = 0.9
    #: A hit opens a case alone, like a child-abuse label's, so the path can be tried without age signals.
    needs_age_signal = False

    def classify(self, content: Content) -> list[Score]:
        grey = content.image.convert("L")
        grey.thumbnail((64, 64))  # the mean barely moves; the work does
        mean = ImageStat.Stat(grey).mean[0] / 255
        return [Score("test_bright", round(mean, 4), {"mean_brightness": round(mean, 4)})]
