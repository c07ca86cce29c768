"""The classifier interface and registry: built-ins by name, plug-ins by entry point, bad ones reported."""

from __future__ import annotations

from typing import ClassVar

import pytest
from PIL import Image

from safehold.classifiers.base import Classifier, Content, ContentKind, Score
from safehold.classifiers.registry import Classifiers, load
from safehold.classifiers.testing import BrightnessClassifier
from safehold.errors import SafeholdError
from tests.media import encode, photo


class FakeEntryPoint:
    def __init__(self, name, obj=None, *, error=None):
        self.name, self.value, self._obj, self._error = name, f"fake_{name}:Classifier", obj, error

    def load(self):
        if self._error is not None:
            raise self._error
        return self._obj


class TextLength(Classifier):
    """A plug-in shaped like a real text classifier: one label, its own threshold."""

    name = "text_length"
    takes: ClassVar[frozenset[ContentKind]] = frozenset({"text"})
    labels = ("long_text",)
    threshold = 0.5

    def classify(self, content: Content) -> list[Score]:
        return [Score("long_text", min(1.0, len(content.text) / 100))]


class Broken(TextLength):
    name = "broken"

    def classify(self, content: Content) -> list[Score]:
        raise RuntimeError("model file missing")


class OffLabel(TextLength):
    name = "off_label"

    def classify(self, content: Content) -> list[Score]:
        return [Score("something_else", 0.9)]


def test_the_test_classifier_scores_brightness_deterministically():
    c = BrightnessClassifier()
    white = c.classify(Content("image", image=Image.new("RGB", (32, 32), "white")))
    black = c.classify(Content("image", image=Image.new("RGB", (32, 32), "black")))
    assert white == [Score("test_bright", 1.0, {"mean_brightness": 1.0})]
    assert black[0].score == 0.0
    assert c.classify(Content("image", image=photo(3))) == c.classify(Content("image", image=photo(3)))


def test_nothing_is_enabled_by_default_and_built_ins_load_by_name():
    assert not load([]) and load([]).classify_image(encode(photo(1))) == []
    enabled = load(["test_brightness"])
    [found] = enabled.classify_image(encode(Image.new("RGB", (64, 64), (250, 250, 250)), "PNG"))
    assert found.classifier == "test_brightness" and found.threshold == 0.9
    assert [h.label for h in found.hits] == ["test_bright"]
    assert enabled.classify_image(b"not an image") == []  # the scan says why; classification adds nothing


def test_a_named_classifier_that_is_not_there_stops_the_start():
    with pytest.raises(SafeholdError) as e:
        load(["nudity"], entry_points=[])
    assert e.value.code == "classifier.unavailable" and e.value.detail["missing"] == ["nudity"]


def test_plug_ins_are_validated_and_bad_ones_reported_and_skipped():
    class Abstract(Classifier):
        name = "abstract"

    class BadTakes(TextLength):
        name = "bad_takes"
        takes = frozenset({"audio"})

    class Clash(TextLength):
        name = "test_brightness"

    eps = [
        FakeEntryPoint("good", TextLength),
        FakeEntryPoint("gone", error=ImportError("no module named acme")),
        FakeEntryPoint("abstract", Abstract),
        FakeEntryPoint("bad_takes", BadTakes),
        FakeEntryPoint("not_a_class", object()),
        FakeEntryPoint("clash", Clash),
    ]
    loaded = load(["text_length"], entry_points=eps)
    assert [c.name for c in loaded.enabled] == ["text_length"]
    codes = sorted((e.detail["plugin"], e.code) for e in loaded.errors)
    assert codes == [
        ("abstract", "plugin.invalid"),
        ("bad_takes", "plugin.invalid"),
        ("clash", "plugin.name_clash"),
        ("gone", "plugin.load_failed"),
        ("not_a_class", "plugin.invalid"),
    ]
    assert all(e.message.startswith("classifier plug-in ") for e in loaded.errors)
    [c] = loaded.classify(Content("text", text="x" * 80))
    assert c.scores == (Score("long_text", 0.8),) and c.hits == c.scores
    assert loaded.classify(Content("image", image=photo(1))) == []  # it does not take images


def test_a_classifier_that_fails_or_breaks_its_contract_is_left_out(caplog):
    classifiers = Classifiers((Broken(), OffLabel(), TextLength()))
    assert [c.classifier for c in classifiers.classify(Content("text", text="hello"))] == ["text_length"]
    assert "'broken' failed" in caplog.text and "'off_label' failed" in caplog.text
