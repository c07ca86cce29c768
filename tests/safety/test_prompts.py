"""The safety prompts: the bundled catalogue, locale fallbacks, operator overrides (validated, audited, seen by
other processes after the reload interval)."""

from __future__ import annotations

import copy

import pytest

from safehold.errors import SafeholdError
from safehold.safety.prompts import KEYS, Prompts, load_catalogue, normalize_locale, validate_catalogue

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def test_the_bundled_catalogue_has_every_key_in_every_locale_with_sources():
    data = load_catalogue()
    assert set(data["locales"]) >= {"en", "es", "fr", "de", "pt"}
    for body in data["locales"].values():
        assert set(body["prompts"]) == set(KEYS)
        names = {h["name"] for h in body["prompts"]["help.sextortion"]["help"]}
        assert "Take It Down (NCMEC)" in names and "NCMEC CyberTipline" in names
        assert all(h["source"] in data["sources"] for p in body["prompts"].values() for h in p["help"])
    en = {h["name"] for h in data["locales"]["en"]["prompts"]["help.sextortion"]["help"]}
    assert {"Report Remove (Childline and IWF)", "CEOP Safety Centre (UK)"} <= en


def test_a_catalogue_missing_a_key_is_refused():
    data = copy.deepcopy(load_catalogue())
    del data["locales"]["fr"]["prompts"]["send.warning"]
    with pytest.raises(SafeholdError) as e:
        validate_catalogue(data)
    assert e.value.code == "prompt.invalid_catalogue" and "locales.fr.prompts.send.warning" in e.value.message


@SQLITE
def test_locale_fallback_exact_then_language_then_default(svc):
    p = svc.prompts
    assert p.get("media.blurred", "fr")["locale"] == "fr"
    assert p.get("media.blurred", "pt_BR")["locale"] == "pt"
    assert p.get("media.blurred", "ja-JP")["locale"] == "en"
    assert p.get("media.blurred", None)["locale"] == "en"
    assert p.get("media.blurred", "not a locale!")["locale"] == "en"  # a client's bad tag never fails a check
    assert p.chain("zh-hant-tw") == ["zh-Hant-TW", "zh", "en"]


@SQLITE
def test_help_resources_follow_the_region(svc):
    gb = {h["name"] for h in svc.prompts.get("help.sextortion", "en-GB")["help"]}
    us = {h["name"] for h in svc.prompts.get("help.sextortion", "en-US")["help"]}
    assert "Report Remove (Childline and IWF)" in gb and "NCMEC CyberTipline" not in gb
    assert "NCMEC CyberTipline" in us and "CEOP Safety Centre (UK)" not in us
    assert all(set(h) <= {"name", "url", "phone", "description"} for h in svc.prompts.get("help.sextortion")["help"])


def test_an_override_wins_at_its_locale_and_is_audited_and_reset(svc):
    p = svc.prompts
    p.set("media.blurred", "pt-br", title="Imagem desfocada", body="Você escolhe.", actor="user:ada")
    shown = p.get("media.blurred", "pt-BR")
    assert shown["locale"] == "pt-BR" and shown["overridden"] and shown["title"] == "Imagem desfocada"
    assert shown["help"] == p.get("media.blurred", "pt")["help"]  # help None: the bundled help of the chain
    assert p.get("media.blurred", "pt")["overridden"] is False
    assert p.table()[KEYS.index("media.blurred")]["locales"]["pt-BR"] is True
    assert "pt-BR" in p.locales()
    p.reset("media.blurred", "pt-BR", actor="user:ada")
    assert p.get("media.blurred", "pt-BR")["locale"] == "pt"
    [update] = svc.audit.list(action="prompt.update")
    assert update["target"] == "prompt:media.blurred/pt-BR" and update["detail"]["new"]["title"] == "Imagem desfocada"
    assert svc.audit.list(action="prompt.reset")
    with pytest.raises(SafeholdError) as e:
        p.reset("media.blurred", "pt-BR", actor="user:ada")
    assert e.value.code == "prompt.not_found" and e.value.status == 404


@SQLITE
def test_an_override_in_the_language_serves_its_regions(svc):
    help_ = [{"name": "Local line", "url": "https://example.org/help", "description": "Help.", "regions": ["MX"]}]
    svc.prompts.set("help.sextortion", "es", title="Ayuda", body="Texto.", help=help_, actor="t")
    assert svc.prompts.get("help.sextortion", "es-MX")["help"] == [
        {"name": "Local line", "url": "https://example.org/help", "description": "Help."}
    ]
    assert svc.prompts.get("help.sextortion", "es-AR")["help"] == []


@SQLITE
@pytest.mark.parametrize(
    ("key", "locale", "fields", "code"),
    [
        ("nope", "en", {"title": "t", "body": "b"}, "prompt.unknown_key"),
        ("media.blurred", "english!", {"title": "t", "body": "b"}, "prompt.invalid"),
        ("media.blurred", "en", {"title": " ", "body": "b"}, "prompt.invalid"),
        ("media.blurred", "en", {"title": "t" * 121, "body": "b"}, "prompt.invalid"),
        ("media.blurred", "en", {"title": "t", "body": "b" * 2001}, "prompt.invalid"),
        ("media.blurred", "en", {"title": "t", "body": "b", "help": [{"name": "x"}]}, "prompt.invalid"),
        (
            "media.blurred",
            "en",
            {"title": "t", "body": "b", "help": [{"name": "x", "url": "javascript:x", "description": "d"}]},
            "prompt.invalid",
        ),
        ("media.blurred", "en", {"title": "t", "body": "b", "help": [{}] * 11}, "prompt.invalid"),
    ],
)
def test_invalid_overrides_are_refused(svc, key, locale, fields, code):
    with pytest.raises(SafeholdError) as e:
        svc.prompts.set(key, locale, actor="t", **fields)
    assert e.value.code == code


@SQLITE
def test_other_processes_see_a_change_after_the_reload_interval(svc):
    now = [100.0]
    other = Prompts(svc.db, svc.audit, reload_seconds=5, clock=lambda: now[0])
    assert other.get("contact.blocked", "de")["overridden"] is False
    svc.prompts.set("contact.blocked", "de", title="Geht nicht", body="Nicht verbunden.", actor="t")
    assert svc.prompts.get("contact.blocked", "de")["title"] == "Geht nicht"  # this process: at once
    assert other.get("contact.blocked", "de")["overridden"] is False  # the other: cached
    now[0] += 5
    assert other.get("contact.blocked", "de")["title"] == "Geht nicht"


def test_normalize_locale():
    assert normalize_locale("PT_br") == "pt-BR"
    with pytest.raises(SafeholdError):
        normalize_locale("x" * 40)
