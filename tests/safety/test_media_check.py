"""Nudity protection for minors: the media check's decisions by band and stage (with ``test_brightness`` as the
policy's classifier, so a white image is "explicit"), the case an adult's explicit image to a minor opens, and
clean refusals of what is not an image."""

from __future__ import annotations

import pytest
from PIL import Image
from sqlalchemy import func, select

from safehold.config import Settings
from safehold.errors import SafeholdError
from safehold.store.models import Case
from tests.media import encode, jpeg

WHITE = encode(Image.new("RGB", (64, 64), "white"))
DARK = jpeg(5)
TEST_POLICY = {"classifier": "test_brightness", "label": "test_bright"}


@pytest.fixture
def settings(tmp_path, database_url):
    return Settings(
        home=tmp_path / "home", database_url=database_url, classifiers=["test_brightness"], safety_reload_seconds=0
    )


@pytest.fixture
def media(svc):
    svc.media_check.set_policy(TEST_POLICY, "test")
    # as an explicit-imagery classifier's (opennsfw): a hit needs an age signal, and takes its category by it
    svc.classifier_policies.change("test_brightness", "test", {"needs_age_signal": True})
    for account, band in (("kid", "under13"), ("teen", "13-15"), ("older", "16-17"), ("grown", "adult")):
        svc.ages.record("test", account, "platform", band=band)
    return svc.media_check


def _check(media, data=WHITE, **kw):
    kw.setdefault("stage", "deliver")
    return media.check(data, actor="apikey:platform", scope="sh_test", **kw)


def _cases(svc) -> int:
    with svc.db.session() as s:
        return s.scalar(select(func.count()).select_from(Case))


@pytest.mark.parametrize(
    ("recipient", "decision", "keys"),
    [
        ("kid", "block", ["media.blocked"]),
        ("teen", "blur", ["media.blurred", "help.sextortion"]),
        ("older", "blur", ["media.blurred", "help.sextortion"]),
    ],
)
def test_an_explicit_image_to_a_minor_is_blurred_or_blocked_by_band(svc, media, recipient, decision, keys):
    out = _check(media, sender="teen", recipient=recipient, locale="es")
    assert out["decision"] == decision and out["classified"] and out["score"] == 1.0 and out["threshold"] == 0.9
    assert [p["key"] for p in out["prompts"]] == keys and out["prompts"][0]["locale"] == "es"
    assert out["recipient_band"] != "adult"


def test_a_benign_image_to_a_minor_is_allowed(media):
    out = _check(media, data=DARK, sender="grown", recipient="teen")
    assert out["decision"] == "allow" and out["classified"] and out["score"] < 0.9 and out["prompts"] == []
    assert out["case_id"] is None


def test_adult_to_adult_is_allowed_without_classifying(svc, media, monkeypatch):
    monkeypatch.setattr(type(svc.classifiers), "classify_image", lambda *a, **k: pytest.fail("classified"))
    out = _check(media, sender="grown", recipient="someone-unknown")
    assert out["decision"] == "allow" and not out["classified"] and out["score"] is None
    assert _check(media, data=b"not an image", sender="grown", recipient="grown")["decision"] == "allow"


def test_the_operator_may_classify_adults_too(media):
    media.set_policy({**TEST_POLICY, "deliver": {"adult": {"action": "blur", "threshold": 0.5}}}, "test")
    out = _check(media, sender="grown", recipient="grown")
    assert out["decision"] == "blur" and out["threshold"] == 0.5
    assert _check(media, sender="grown", recipient="kid")["decision"] == "block"  # the other bands keep defaults


def test_a_minor_sending_an_explicit_image_is_warned(media):
    out = _check(media, sender="teen", stage="send", locale="de-DE")
    assert out["decision"] == "warn" and [p["key"] for p in out["prompts"]] == ["send.warning", "help.sextortion"]
    assert out["prompts"][0]["locale"] == "de" and "Sextortion" in out["prompts"][0]["body"]
    assert _check(media, data=DARK, sender="teen", stage="send")["decision"] == "allow"
    assert not _check(media, sender="grown", stage="send")["classified"]


def test_an_adults_explicit_image_to_a_minor_opens_one_case(svc, media):
    out = _check(media, sender="grown", recipient="teen", content_id="msg-1")
    assert out["decision"] == "blur" and out["case_id"] is not None
    case = svc.cases.get(out["case_id"])
    assert case["source"] == "classifier" and case["account_id"] == "grown"
    [sig] = case["signals"]
    age = sig["detail"]["age"]
    assert age["reasons"] == ["recipient_minor"] and age["recipient_band"] == "13-15"
    assert age["uploader_band"] == "adult" and sig["confidence"] == 1.0
    # the pipeline's rule for a hit whose only age signal is the recipient: exposure of a child to sexual
    # material (grooming), not apparent CSAM; a child in contact with the sender now
    assert sig["category"] == "grooming" and sig["detail"]["minor_at_risk"]
    assert case["items"][0]["has_media"]
    again = _check(media, sender="grown", recipient="teen", content_id="msg-1")
    assert again["case_id"] == out["case_id"] and _cases(svc) == 1
    # at send: the same case (one event, either stage), and the adult's send rule answers (allow: the child's
    # protection is the deliver check, and the sender is not told)
    at_send = _check(media, sender="grown", recipient="teen", content_id="msg-1", stage="send")
    assert at_send["decision"] == "allow" and at_send["case_id"] == out["case_id"]
    unknown = _check(media, sender="stranger", recipient="kid", stage="send")  # an unknown sender, at send
    assert unknown["decision"] == "allow" and unknown["case_id"] not in (None, out["case_id"])


def test_an_adults_image_to_a_minor_first_seen_at_send_opens_the_case_deliver_finds(svc, media):
    at_send = _check(media, sender="grown", recipient="kid", content_id="msg-9", stage="send")
    assert at_send["decision"] == "allow" and at_send["classified"] and at_send["case_id"] is not None
    at_deliver = _check(media, sender="grown", recipient="kid", content_id="msg-9")
    assert at_deliver["decision"] == "block" and at_deliver["case_id"] == at_send["case_id"] and _cases(svc) == 1


@pytest.mark.parametrize(("stage", "recipient", "decision"), [("send", None, "warn"), ("deliver", "grown", "allow")])
def test_a_minors_explicit_image_opens_a_case_to_anyone(svc, media, stage, recipient, decision):
    """Possibly self-generated imagery of a child: reason ``uploader_minor``, apparent CSAM, as ``/v1/scan`` with
    the minor's account_id; the answer to the platform is unchanged (warn the minor at send)."""
    out = _check(media, sender="teen", recipient=recipient, stage=stage, content_id="msg-2")
    assert out["decision"] == decision and out["case_id"] is not None
    [sig] = svc.cases.get(out["case_id"])["signals"]
    assert sig["detail"]["age"]["reasons"] == ["uploader_minor"] and sig["detail"]["age"]["uploader_band"] == "13-15"
    assert sig["category"] == "csam" and sig["detail"]["minor_at_risk"]
    assert not _check(media, data=DARK, sender="teen", recipient=recipient, stage=stage)["case_id"]


def test_a_minor_to_a_minor_is_apparent_csam(svc, media):
    out = _check(media, sender="teen", recipient="kid", content_id="msg-3")
    [sig] = svc.cases.get(out["case_id"])["signals"]
    assert sig["detail"]["age"]["reasons"] == ["uploader_minor", "recipient_minor"] and sig["category"] == "csam"


def test_the_blur_threshold_does_not_decide_when_a_case_opens(svc, media):
    """The media policy's threshold is a UX choice (what is blurred); a case needs the classifier policy's."""
    grey = encode(Image.new("RGB", (64, 64), (200, 200, 200)))
    media.set_policy({**TEST_POLICY, "deliver": {"13-15": {"action": "blur", "threshold": 0.5}}}, "test")
    out = _check(media, data=grey, sender="grown", recipient="teen")
    assert 0.5 <= out["score"] < 0.9 and out["decision"] == "blur" and out["case_id"] is None and _cases(svc) == 0
    svc.classifier_policies.change("test_brightness", "test", {"threshold": 0.5})
    assert _check(media, data=grey, sender="grown", recipient="teen")["case_id"] is not None
    svc.classifier_policies.change("test_brightness", "test", {"threshold": None})  # back to 0.9
    media.set_policy({**TEST_POLICY, "deliver": {"13-15": {"action": "blur", "threshold": 0.99}}}, "test")
    light = encode(Image.new("RGB", (64, 64), (240, 240, 240)))
    out = _check(media, data=light, sender="grown", recipient="teen", content_id="msg-4")
    assert 0.9 <= out["score"] < 0.99 and out["decision"] == "allow"
    assert out["case_id"] is not None  # not blurred, but still sent to review


def test_no_case_and_nothing_kept_without_an_explicit_image(svc, media):
    _check(media, data=DARK, sender="grown", recipient="teen")
    _check(media, sender="grown", recipient="grown")
    assert _cases(svc) == 0 and not any(p.is_file() for p in svc.settings.vault_dir.rglob("*"))


def test_cases_can_be_turned_off(svc, media):
    media.set_policy({**TEST_POLICY, "open_cases": False}, "test")
    assert _check(media, sender="grown", recipient="teen")["case_id"] is None and _cases(svc) == 0


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"not an image at all", "media.unsupported_format"),
        (WHITE[: len(WHITE) // 2], "media.truncated"),
        (b"", "media.empty"),
    ],
)
def test_what_is_not_an_image_is_refused_cleanly(media, data, code):
    with pytest.raises(SafeholdError) as e:
        _check(media, data=data, sender="grown", recipient="kid")
    assert e.value.code == code


@pytest.mark.parametrize(
    ("kw", "code"),
    [
        ({"sender": "grown", "stage": "deliver"}, "media.invalid_check"),
        ({"sender": "", "recipient": "kid"}, "media.invalid_check"),
        ({"sender": "x" * 129, "recipient": "kid"}, "media.invalid_check"),
        ({"sender": "a\x00b", "recipient": "kid"}, "media.invalid_check"),  # the age book's rule at every door
        ({"sender": "grown", "recipient": "   "}, "media.invalid_check"),
        ({"sender": "grown", "recipient": "kid", "stage": "later"}, "media.invalid_check"),
    ],
)
def test_bad_fields_are_refused(media, kw, code):
    with pytest.raises(SafeholdError) as e:
        media.check(WHITE, actor="t", scope="t", **kw)
    assert e.value.code == code and e.value.status == 422


def test_the_default_policy_needs_its_classifier_enabled(svc):
    assert svc.media_check.policy().classifier == "opennsfw" and svc.media_check.policy().label == "explicit"
    svc.ages.record("test", "teen", "platform", band="13-15")
    with pytest.raises(SafeholdError) as e:
        _check(svc.media_check, sender="grown", recipient="teen")
    assert e.value.code == "media.classifier_unavailable" and e.value.status == 503


def test_a_policy_label_the_classifier_lacks_is_refused(media):
    with pytest.raises(SafeholdError) as e:
        media.set_policy({"classifier": "test_brightness", "label": "explicit"}, "test")
    assert e.value.code == "media.invalid_policy"
    with pytest.raises(SafeholdError) as e:
        media.set_policy({"deliver": {"teen": {"action": "blur"}}}, "test")
    assert e.value.code == "request.invalid"


def test_an_adult_claiming_to_be_a_child_is_an_adult_sender(svc, media):
    svc.ages.record("test", "poser", "platform", band="adult")
    svc.ages.record("test", "poser", "chat", age=14, confidence=0.6, method="stated")
    out = _check(media, sender="poser", recipient="teen")
    assert out["sender_band"] == "13-15" and out["case_id"] is not None  # "an adult sends to a minor"
    [sig] = svc.cases.get(out["case_id"])["signals"]
    age = sig["detail"]["age"]  # a minor's protective band, with the adult's band as a sender and the conflict
    assert age["uploader_band"] == "13-15" and age["sender_band_as_sender"] == "adult" and age["age_conflict"]
