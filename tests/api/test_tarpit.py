"""The tarpit (safehold.api.tarpit, docs/security.md "Tarpit"): a caller that keeps being refused waits before its
next requests are served; a caller never refused never waits, whoever shares its address; the table of callers and
the requests waiting at once are bounded; ``/v1/health`` never waits."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from safehold.api import tarpit as tarpit_module
from safehold.api.tarpit import Tarpit
from safehold.app import create_app
from tests.api.test_limits import asgi

DELAY = 1.0  # long enough to tell from an answer's own time on a loaded machine
DEEP = [("Content-Type", "application/json")]


@pytest.fixture
def app(svc, settings, keys):
    settings.tarpit_free_refusals = 2
    settings.tarpit_first_delay_seconds = DELAY
    settings.tarpit_max_delay_seconds = DELAY
    settings.tarpit_forgive_per_second = 0.01  # nothing forgiven while a test runs
    app = create_app(svc, background=False)
    assert asgi(app, "GET", "/v1/cases", [auth(keys, "admin")])[0] == 200  # the first request is slow: warm up
    return app


def timed(app, method, path, headers=(), chunks=()):
    t0 = time.perf_counter()
    status, head, body, _ = asgi(app, method, path, headers, chunks)
    return status, head, body, time.perf_counter() - t0


def too_deep(app, key):
    """A refusal that costs nothing: JSON nested deeper than the limit, 400 in the middleware."""
    status, _, body, took = timed(app, "POST", "/v1/scan", [*DEEP, key], [b"[" * 100 + b"]" * 100])
    assert status == 400 and json.loads(body)["error"]["code"] == "request.json_too_deep"
    return took


def too_large_anonymous(app):
    status, _, _, took = timed(app, "POST", "/v1/events", [("Content-Length", str(1 << 30))])
    assert status == 413
    return took


def auth(keys, role):
    return ("Authorization", keys[role]["Authorization"])


def test_delay_grows_with_refusals_up_to_the_longest_and_is_forgiven():
    t = Tarpit(free=3, forgive=1.0, first=0.1, longest=1.0, max_parked=10)
    for _ in range(3):
        t.refused("k", 0.0)
    assert t.delay("k", 0.0) == 0  # the free refusals
    delays = []
    for _ in range(6):
        t.refused("k", 0.0)
        delays.append(t.delay("k", 0.0))
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    # The count stops at the longest delay, so a caller that behaves is forgiven within seconds however long it
    # misbehaved: here 1,000 refusals, then refused no more for (ceiling - free) seconds.
    for _ in range(1000):
        t.refused("k", 0.0)
    assert t.delay("k", 0.0) == 1.0
    assert t.delay("k", t.ceiling - t.free) == 0
    assert t.delay("someone else", 0.0) == 0


def test_a_caller_refused_less_often_than_it_is_forgiven_is_never_delayed():
    t = Tarpit(free=3, forgive=0.2, first=0.1, longest=1.0, max_parked=10)
    for i in range(1000):
        t.refused("k", i * 5.0)  # once every 5 s: forgiven as fast as it is refused
        assert t.delay("k", i * 5.0) == 0


def test_the_table_of_callers_is_bounded(monkeypatch):
    monkeypatch.setattr(tarpit_module, "MAX_CALLERS", 100)
    t = Tarpit(free=0, forgive=1.0, first=0.1, longest=1.0, max_parked=10)
    for i in range(1000):
        t.refused(f"c{i}", 0.0)
        assert len(t.state) <= 100
    # Callers forgiven by now are dropped first; a caller still in debt is dropped only when all are.
    t = Tarpit(free=0, forgive=1.0, first=0.1, longest=1.0, max_parked=10)
    for _ in range(5):
        t.refused("busy", 59.0)
    for i in range(99):
        t.refused(f"old{i}", 0.0)
    t.refused("new", 60.0)
    assert set(t.state) == {"busy", "new"}


def test_requests_waiting_at_once_are_bounded():
    t = Tarpit(free=0, forgive=1.0, first=0.5, longest=0.5, max_parked=2)

    async def three():
        t0 = time.perf_counter()
        parked = await asyncio.gather(*(t.park(0.5) for _ in range(3)))
        return parked, time.perf_counter() - t0

    parked, took = asyncio.run(three())
    assert sorted(parked) == [False, True, True] and t.parked == 0 and took < 2


def test_a_refused_caller_is_slowed_and_a_clean_one_on_the_same_address_is_not(app, keys):
    platform = auth(keys, "platform")
    assert max(too_deep(app, platform) for _ in range(3)) < DELAY  # two free refusals, then one beyond
    assert too_deep(app, platform) >= DELAY  # now every request of that key waits first
    # The admin key comes from the same address (the helper's client) and was never refused: no wait.
    status, _, _, took = timed(app, "GET", "/v1/cases", [auth(keys, "admin")])
    assert status == 200 and took < DELAY


def test_an_anonymous_flood_does_not_slow_a_key_from_its_address(app, keys):
    for _ in range(3):
        too_large_anonymous(app)
    assert too_large_anonymous(app) >= DELAY
    status, _, _, took = timed(app, "GET", "/v1/cases", [auth(keys, "admin")])
    assert status == 200 and took < DELAY
    # A key the address made up does not buy it a clean slate.
    status, _, _, took = timed(app, "GET", "/v1/cases", [("Authorization", "Bearer sh_madeup_madeup")])
    assert status == 401 and took >= DELAY


def test_health_is_never_delayed(app, keys):
    for _ in range(4):
        too_large_anonymous(app)
    status, _, _, took = timed(app, "GET", "/v1/health")
    assert status == 200 and took < DELAY


def test_past_the_parked_limit_a_delayed_caller_is_refused_at_once(app, svc, keys, settings):
    settings.tarpit_max_parked = 0
    app = create_app(svc, background=False)  # the limits are read from the settings once per app
    platform = auth(keys, "platform")
    for _ in range(3):
        too_deep(app, platform)
    status, head, body, took = timed(app, "POST", "/v1/scan", [*DEEP, platform], [b"{}"])
    assert status == 429 and json.loads(body)["error"]["code"] == "rate.throttled"
    assert head["retry-after"] == "1" and head["connection"] == "close" and took < DELAY


def test_tarpit_off(app, svc, keys, settings):
    settings.tarpit_max_delay_seconds = 0
    app = create_app(svc, background=False)
    platform = auth(keys, "platform")
    assert max(too_deep(app, platform) for _ in range(6)) < DELAY
