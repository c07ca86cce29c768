"""A scripted exchange the sharing tests drive through its settings, registered as the type ``scripted``.

Its records are MD5 values numbered from 0; the checkpoint is how many it has yielded. Settings make it fail
after some batches, repeat each batch, yield tombstones or hashes of unknown types, or call a hook mid-fetch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

import pytest

from safehold.banks.formats import EntryRecord
from safehold.sharing import registry
from safehold.sharing.base import Credentials, Exchange, ExchangeError, FetchBatch, Settings, UnknownSignal, tombstone

#: Called between batches when set (a test's way to act while a round runs).
HOOK: list[Callable[[], None]] = []


def md5_of(i: int) -> str:
    return hashlib.md5(f"record {i}".encode()).hexdigest()


class ScriptedSettings(Settings):
    total: int = 5
    per_batch: int = 2
    fail_after: int | None = None  # batches yielded before the round raises
    retryable: bool = True
    retry_after: float | None = None
    repeat: bool = False
    withdraw: list[str] = []  # external ids deleted after the records
    unknown: int = 0  # PHOTODNA hashes per batch (the same ones each round)
    pdq: str | None = None  # one PDQ hash instead of the MD5 records
    bug: bool = False  # fails like a plug-in with a bug: not an ExchangeError


class ScriptedCredentials(Credentials):
    token: str


class Scripted(Exchange):
    name = "scripted"
    title = "Scripted (tests)"
    settings_model = ScriptedSettings
    credentials_model = ScriptedCredentials
    default_every = 600

    settings: ScriptedSettings

    def fetch(self, checkpoint: dict | None) -> Iterator[FetchBatch]:
        st = self.settings
        if st.bug:
            raise RuntimeError("a bug in the plug-in")
        at = (checkpoint or {}).get("offset", 0)
        if st.pdq is not None:
            yield FetchBatch([EntryRecord("pdq", st.pdq, external_id="p-1")], {"offset": 1}, done=True)
            return
        yielded = 0
        while at < st.total:
            upto = min(at + st.per_batch, st.total)
            records = [EntryRecord("md5", md5_of(i), external_id=f"e{i}") for i in range(at, upto)]
            unknown = [UnknownSignal("PHOTODNA", f"{'ab' * 8}{k:04d}", f"u{k}") for k in range(st.unknown)]
            for _ in range(2 if st.repeat else 1):
                yield FetchBatch(list(records), {"offset": upto}, unknown=unknown)
            yielded += 1
            at = upto
            for hook in HOOK:
                hook()
            if st.fail_after is not None and yielded >= st.fail_after:
                raise ExchangeError(
                    "exchange.unavailable", "the source went away", retryable=st.retryable, retry_after=st.retry_after
                )
        if st.withdraw:
            yield FetchBatch([tombstone(x) for x in st.withdraw], {"offset": at, "withdrew": st.withdraw})
        yield FetchBatch([], {"offset": at}, done=True)


@pytest.fixture
def scripted(monkeypatch, svc):
    """The ``scripted`` type registered, a bank ``shared`` and a function creating an exchange on it."""
    monkeypatch.setitem(registry.BUILTIN, "scripted", (__name__, "Scripted"))
    svc.banks.create("shared")
    HOOK.clear()

    def make(name: str = "acme", credentials: dict | None = None, **settings) -> dict:
        return svc.exchanges.create(
            name, "scripted", "shared", settings, credentials or {"token": "t0ken-value-123"}, actor="tester"
        )

    yield make
    HOOK.clear()
