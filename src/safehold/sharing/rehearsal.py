"""Stand-ins of the exchanges' sources served for a rehearsal (``safehold exchange stand-in TYPE``).

A new operator tries the whole loop (configure, fetch, match, give feedback) before asking NCMEC, StopNCII, Meta or
Tech Against Terrorism for an account: the same local stand-ins the tests use, filled with a few synthetic,
benign hashes plus the operator's own (``md5=…``, ``pdq=…`` of a harmless test image), and the settings and
credentials that point an exchange of that type at them. Loopback only, credentials fixed and public: a rehearsal
tool, never a source.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from safehold.errors import SafeholdError

#: Hash types every rehearsal source takes (the signal types its exchange maps them to).
HASH_TYPES = ("md5", "pdq")


def _a_minute_ago() -> int:
    """The time a stand-in stamps on its first entries: a source lists changes strictly before the moment a listing
    begins, so an entry stamped in the same second as the first fetch would wait for the next round."""
    return int(time.time()) - 60


def _now() -> int:
    """The stand-ins' clock once filled (their listings end at the wall clock, like the real APIs')."""
    return int(time.time())


#: Synthetic entries a stand-in holds at most besides the operator's own.
MAX_SYNTHETIC = 1000
MAX_GIVEN = 100


@dataclass
class Rehearsal:
    """A running stand-in: where it is, what an exchange needs to read it, and what it has been told back."""

    type_name: str
    url: str
    settings: dict[str, Any]
    credentials: dict[str, Any]
    feedback: Callable[[], list]
    stop: Callable[[], None]


def synthetic(n: int) -> list[tuple[str, str]]:
    """``n`` benign hashes made from their number: an MD5 and a PDQ-shaped value each (they match nothing real)."""
    out = []
    for i in range(n):
        seed = f"safehold stand-in entry {i}".encode()
        out += [("md5", hashlib.md5(seed).hexdigest()), ("pdq", hashlib.sha256(seed).hexdigest())]
    return out


def parse_hash(text: str) -> tuple[str, str]:
    """``TYPE=VALUE`` (``md5=…`` or ``pdq=…``), checked by the signal type so a typo is refused here."""
    from safehold.signals import registry

    kind, sep, value = text.partition("=")
    kind = kind.strip().lower()
    if not sep or kind not in HASH_TYPES:
        raise SafeholdError("request.invalid", f"Give a hash as md5=VALUE or pdq=VALUE, not {text[:80]!r}.")
    return kind, registry.normalize(kind, value.strip())


def _ncmec(host: str, port: int, hashes: list[tuple[str, str]]) -> Rehearsal:
    from safehold.sharing.exchanges.ncmec_standin import NcmecStandIn

    s = NcmecStandIn(username="esp", password="rehearsal")
    past = int(time.time()) - 3600
    for i, (kind, value) in enumerate(hashes):
        s.put(42, f"rehearsal-{i}", {kind: value}, classification="A1", timestamp=past)
    url = s.start(host, port)
    settings = {"base_url": url, "lag_seconds": 0, "feedback_reasons": {"not_violating": "Not CSAM"}}
    return Rehearsal("ncmec", url, settings, {"username": "esp", "password": "rehearsal"}, lambda: s.feedback, s.stop)


def _stopncii(host: str, port: int, hashes: list[tuple[str, str]]) -> Rehearsal:
    from safehold.sharing.exchanges.stopncii import FEEDBACK_TYPES
    from safehold.sharing.exchanges.stopncii_standin import StopNCIIStandIn

    s = StopNCIIStandIn(clock=_a_minute_ago)
    for kind, value in hashes:
        s.add(FEEDBACK_TYPES[kind], value)
    s.clock = _now
    url = s.start(host, port)
    creds = {"subscription_key": "sub-key", "fetch_function_key": "fetch-key", "feedback_function_key": "feedback-key"}
    return Rehearsal("stopncii", url, {"base_url": url}, creds, lambda: s.feedback, s.stop)


def _threatexchange(host: str, port: int, hashes: list[tuple[str, str]]) -> Rehearsal:
    from safehold.sharing.exchanges.threatexchange_standin import ThreatExchangeStandIn

    token, group = "1234567890|rehearsal-app-secret", 303
    s = ThreatExchangeStandIn(tokens={token}, clock=_a_minute_ago)
    for kind, value in hashes:
        s.add(group, f"HASH_{kind.upper()}", value, tags=["rehearsal"])
    s.clock = _now
    url = s.start(host, port)
    settings = {"base_url": url, "privacy_groups": [group]}
    return Rehearsal("threatexchange", url, settings, {"access_token": token}, lambda: s.reactions, s.stop)


def _tat(host: str, port: int, hashes: list[tuple[str, str]]) -> Rehearsal:
    from safehold.sharing.exchanges.tat_standin import TATStandIn

    s = TATStandIn(users={"platform": "rehearsal"}, clock=_a_minute_ago)
    for kind, value in hashes:
        s.add(kind.upper(), value)
    s.clock = _now
    url = s.start(host, port)
    return Rehearsal("tat", url, {"base_url": url}, {"username": "platform", "password": "rehearsal"}, list, s.stop)


STAND_INS: dict[str, Callable[[str, int, list[tuple[str, str]]], Rehearsal]] = {
    "ncmec": _ncmec,
    "stopncii": _stopncii,
    "threatexchange": _threatexchange,
    "tat": _tat,
}


def start(type_name: str, *, host: str = "127.0.0.1", port: int = 0, entries: int = 3, given=()) -> Rehearsal:
    """Serve a stand-in of ``type_name`` holding ``entries`` synthetic entries and the ``given`` hashes."""
    if type_name not in STAND_INS:
        raise SafeholdError("request.invalid", f"No stand-in of {type_name!r}: one of {', '.join(STAND_INS)}.")
    if not 0 <= entries <= MAX_SYNTHETIC or len(given) > MAX_GIVEN:
        raise SafeholdError("request.invalid", f"At most {MAX_SYNTHETIC} synthetic entries and {MAX_GIVEN} hashes.")
    return STAND_INS[type_name](host, port, [*given, *synthetic(entries)])
