"""The console's safety-prompts page: keys × locales, who may edit, the preview, save and reset."""

from __future__ import annotations

import json

import pytest

pytestmark = [
    pytest.mark.usefixtures("staff_users"),
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]


def test_console_page_lists_edits_previews_and_resets(open_console, svc):
    otto = open_console("otto")  # auditor: stats.read, reads only
    page = otto.get("/console/safety/prompts")
    assert page.status_code == 200 and "help.sextortion" in page.text and "Safety prompts" in page.text
    assert 'href="/console/safety/prompts"' in page.text  # in the navigation
    one = otto.get("/console/safety/prompts?key=media.blurred&locale=fr")
    assert "Cette image pourrait montrer de la nudité" in one.text and 'name="title"' not in one.text
    assert otto.post("/console/safety/prompts/media.blurred/fr", data={"title": "x", "body": "y"}).status_code == 403
    ada = open_console("ada")
    preview = ada.post(
        "/console/safety/prompts/media.blurred/fr", data={"title": "Brouillon", "body": "Texte.", "action": "preview"}
    )
    assert preview.status_code == 200 and "Preview of your draft" in preview.text and "Brouillon" in preview.text
    assert svc.prompts.get("media.blurred", "fr")["overridden"] is False
    unsafe = [{"name": "x", "url": "javascript:alert(1)", "description": "d"}]
    bad_preview = ada.post(
        "/console/safety/prompts/media.blurred/fr",
        data={"title": "t", "body": "b", "help": json.dumps(unsafe), "action": "preview"},
    )
    assert bad_preview.status_code == 422 and 'href="javascript:' not in bad_preview.text
    saved = ada.post("/console/safety/prompts/media.blurred/fr", data={"title": "Image floutée", "body": "Texte."})
    assert saved.status_code == 303 and svc.prompts.get("media.blurred", "fr")["title"] == "Image floutée"
    page = ada.get(saved.headers["location"])
    assert "Prompt saved" in page.text and "overridden" in page.text and "Reset to the bundled text" in page.text
    bad = ada.post("/console/safety/prompts/media.blurred/fr", data={"title": "t", "body": "b", "help": "[{"})
    assert bad.status_code == 422 and "prompt.invalid" in bad.text
    assert ada.post("/console/safety/prompts/media.blurred/fr/reset").status_code == 303
    assert svc.prompts.get("media.blurred", "fr")["overridden"] is False
