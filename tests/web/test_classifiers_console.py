"""The console's Classifiers page: the policies and the precision table for staff who read statistics, the policy
form for admins only, readable without JavaScript."""

from __future__ import annotations

import pytest

from safehold.config import Settings
from tests.review.test_outcomes import decide, hit

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def settings(tmp_path, database_url):
    return Settings(home=tmp_path / "home", database_url=database_url, classifiers=["test_brightness"])


def test_page_form_and_precision(svc, open_console, staff_users):
    decide(svc, hit(svc, "c1", 238), violating=False)
    otto = open_console("otto")  # an auditor reads statistics, never changes a policy
    page = otto.get("/console/classifiers")
    assert page.status_code == 200
    text = page.text
    assert 'href="/console/classifiers"' in text and "test_brightness" in text and "Threshold" in text
    assert "1 reviewed hits" in text and "unknown (never reviewed below 0.9)" in text and "(current)" in text
    assert "/console/classifiers/test_brightness/policy" not in text
    assert otto.post("/console/classifiers/test_brightness/policy", {"threshold": "0.95"}).status_code == 403

    ada = open_console("ada")
    assert 'action="/console/classifiers/test_brightness/policy"' in ada.get("/console/classifiers").text
    r = ada.post("/console/classifiers/test_brightness/policy", {"threshold": "0.95", "auto_action": "true"})
    assert r.status_code == 303 and "classifier_policy_saved" in r.headers["location"]
    policy = svc.classifier_policies.policy("test_brightness")
    assert policy.threshold == 0.95 and policy.auto_action and not policy.needs_age_signal
    assert svc.audit.list(limit=10, action="classifier.policy")[-1]["actor"] == "user:ada"
    page = ada.get(r.headers["location"]).text
    assert "Classifier policy saved" in page and "(default 0.9)" in page
    bad = ada.post("/console/classifiers/test_brightness/policy", {"threshold": "lots"})
    assert bad.status_code == 422
    assert ada.post("/console/classifiers/nudity/policy", {"threshold": "0.5"}).status_code == 404
    ada.post("/console/classifiers/test_brightness/policy", {})
    assert svc.classifier_policies.policy("test_brightness").threshold == 0.9  # an empty form: the defaults
