"""Classifier hits go to human review: a case with source ``classifier`` and the scores on it, never an
automatic action; below the threshold, nothing is kept."""

from __future__ import annotations

import hashlib
import io

import pytest
from PIL import Image
from sqlalchemy import func, select

from safehold.auth.apikeys import Principal
from safehold.cases.detection import Detection
from safehold.config import Settings
from safehold.pipeline.service import Submission
from safehold.store.models import IngestedEvent
from tests.media import encode, jpeg, photo

PLATFORM = Principal(name="platform", role="platform", key_prefix="sh_one")
BRIGHT = encode(Image.eval(photo(11), lambda v: 230 + v // 10))


@pytest.fixture
def settings(tmp_path, database_url):
    return Settings(home=tmp_path / "home", database_url=database_url, classifiers=["test_brightness"])


def _keys(svc) -> int:
    with svc.db.session() as s:
        return s.scalar(select(func.count()).select_from(IngestedEvent))


def _vaulted(svc) -> int:
    return sum(p.is_file() for p in svc.settings.vault_dir.rglob("*"))


def test_a_hit_opens_a_review_case_and_never_acts(svc):
    # Even a policy written for classifier signals never fires: only auto banks' matches run automatic policies.
    svc.actions.create_policy("eager", "auto", {"source": "classifier"}, ["block_content"], actor="test")
    body = {"type": "content", "content": {"id": "c1"}}
    out = svc.events.ingest(PLATFORM, body, file=BRIGHT, filename="b.jpg", idempotency_key="k1")
    [ref] = out["cases"]
    case = svc.cases.get(ref["id"])
    assert case["source"] == "classifier" and case["queue"] == "media" and not case["known_match"]
    assert case["actions"] == []
    [sig] = case["signals"]
    assert sig["source"] == "classifier" and sig["signal_type"] == "test_brightness"
    assert sig["category"] == "test_bright" and sig["confidence"] >= 0.9
    assert sig["detail"]["threshold"] == 0.9 and sig["detail"]["scores"] == {"test_bright": sig["confidence"]}
    assert sig["detail"]["reasons"] == {"mean_brightness": sig["confidence"]}
    [item] = case["items"]
    assert item["has_media"] and item["filename"] == "b.jpg" and item["media_type"] == "image"
    assert _vaulted(svc) == 1
    again = svc.events.ingest(PLATFORM, body, file=BRIGHT, filename="b.jpg", idempotency_key="k1")
    assert again == {**out, "duplicate": True}


def test_below_the_threshold_nothing_is_kept(svc):
    sub = Submission(Detection(source="event", content_id="c2"), scans=[svc.scans.scan_bytes(jpeg(3))], media=jpeg(3))
    assert svc.pipeline.submit(sub, key="t:k", digest="d", actor="test", answer=lambda ref: {}) is None
    assert _keys(svc) == 0 and _vaulted(svc) == 0


def test_a_lookup_is_never_classified(svc, monkeypatch):
    def fail(data):
        raise AssertionError("classified a lookup")

    monkeypatch.setattr(svc.classifiers, "classify_image", fail)
    out = svc.events.scanned(PLATFORM, svc.scans.scan_bytes(BRIGHT), BRIGHT)
    assert "cases" not in out


def test_the_scan_door_records_a_hit_once(svc):
    first = svc.events.scanned(PLATFORM, svc.scans.scan_bytes(BRIGHT), BRIGHT, content_id="c3")
    again = svc.events.scanned(PLATFORM, svc.scans.scan_bytes(BRIGHT), BRIGHT, content_id="c3")
    assert first["cases"][0]["created"] and not first["duplicate"]
    assert again["duplicate"] and again["cases"] == first["cases"]
    assert len(svc.cases.get(first["cases"][0]["id"])["signals"]) == 1


def test_only_images_hashed_without_error_are_classified(svc):
    """Was: the classifier decoded the file again even when hashing had refused it (too many pixels, …)."""
    svc.settings.max_image_pixels = 1_000  # the scan's cap (the classifiers were built with the default)
    scan = svc.scans.scan_bytes(BRIGHT)
    assert scan.error["code"] == "media.decompression_bomb"
    assert "cases" not in svc.events.scanned(PLATFORM, scan, BRIGHT, content_id="c4")
    assert _keys(svc) == 0 and _vaulted(svc) == 0


def test_an_allowlisted_image_is_not_classified(svc):
    svc.banks.create("fine", kind="allow", created_by="test")
    svc.banks.add_hash("fine", "md5", hashlib.md5(BRIGHT).hexdigest())  # too featureless for a PDQ entry
    scan = svc.scans.scan_bytes(BRIGHT)
    assert scan.verdict == "allowlisted"
    assert "cases" not in svc.events.scanned(PLATFORM, scan, BRIGHT, content_id="c5")


def test_the_classifier_decodes_within_the_scans_bounds(svc, monkeypatch):
    """Was: the classifier's decode ignored the pixel budget and the JPEG caps."""
    st, classifiers = svc.settings, svc.classifiers
    assert (classifiers.max_pixels, classifiers.max_jpeg_scans, classifiers.max_jpeg_segments) == (
        st.max_image_pixels,
        st.jpeg_max_scans,
        st.jpeg_max_segments,
    )
    held = []
    hold = svc.scans.pixels.hold

    def spy(weight, wait=None):
        held.append(weight)
        return hold(weight, wait)

    monkeypatch.setattr(svc.scans.pixels, "hold", spy)
    width, height = Image.open(io.BytesIO(BRIGHT)).size
    assert classifiers.classify_image(BRIGHT)[0].hits
    assert held == [width * height]
