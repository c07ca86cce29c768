"""Age-assurance providers: the registry (built-ins, entry-point plug-ins, bad configuration) and the signed_webhook
format, without HTTP."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
from pydantic import BaseModel

from safehold.errors import SafeholdError
from safehold.safety.assurance import AssuranceProvider, AssuranceResult, SignedWebhook, load, sign_callback

SECRET = "a-shared-secret-of-some-length"
RESULT = {"account_id": "u-1", "band": "adult", "method": "verification", "reference": "r-1"}


class EchoSettings(BaseModel):
    account: str


class EchoProvider(AssuranceProvider):
    """A plug-in that trusts nothing but its own settings (only for this test)."""

    type = "echo"
    Settings = EchoSettings

    def verify_callback(self, headers, body):
        return AssuranceResult(account_id=self.settings.account, age=15, method="estimation", reference="e")


@dataclass
class FakeEntryPoint:
    name: str
    value: str
    target: object

    def load(self):
        if isinstance(self.target, Exception):
            raise self.target
        return self.target


def test_a_plug_in_provider_is_found_by_its_type():
    eps = [
        FakeEntryPoint("broken", "nowhere:X", ImportError("no module")),
        FakeEntryPoint("echo", "t:Echo", EchoProvider),
    ]
    providers = load({"mine": {"type": "echo", "account": "u-9"}}, entry_points=eps)
    assert providers["mine"].verify_callback({}, b"").account_id == "u-9" and providers["mine"].name == "mine"


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"Bad Name": {"type": "signed_webhook", "secret": SECRET}}, "provider name"),
        ({"p": {"secret": SECRET}}, "needs a 'type'"),
        ({"p": {"type": "nope"}}, "'nope'"),
        ({"p": {"type": "signed_webhook", "secret": "short"}}, "secret"),
        ({"p": {"type": "signed_webhook", "secret": SECRET, "window_seconds": 1}}, "window_seconds"),
        ({"p": {"type": "signed_webhook", "secret": SECRET, "other": 1}}, "other"),
    ],
)
def test_bad_configuration_is_named(config, says):
    with pytest.raises(SafeholdError) as e:
        load(config, entry_points=[])
    assert e.value.code == "age_assurance.misconfigured" and says in e.value.message


def test_signed_webhook_accepts_any_of_several_signatures_within_the_window():
    provider = load({"p": {"type": "signed_webhook", "secret": SECRET}})["p"]
    assert isinstance(provider, SignedWebhook)
    body, headers = sign_callback(SECRET, RESULT)
    _, old = sign_callback("the-previous-secret-000", RESULT)
    t, v1 = headers["Safehold-Signature"].split(",")
    rolled = f"{t},{old['Safehold-Signature'].split(',')[1]},{v1}"  # a relay mid-rotation sends both
    assert provider.verify_callback({"safehold-signature": rolled}, body).band == "adult"
    body, headers = sign_callback(SECRET, RESULT, int(time.time()) + 3600)
    with pytest.raises(SafeholdError) as e:
        provider.verify_callback({"safehold-signature": headers["Safehold-Signature"]}, body)
    assert e.value.code == "age_assurance.expired"
