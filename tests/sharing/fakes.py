"""A stand-in exchange for feedback and contribution tests: it takes opinions and hashes, remembers them, and fails
on demand (retryably, with a Retry-After, or for good)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

from safehold.banks.formats import EntryRecord
from safehold.sharing.base import Exchange, ExchangeError, FetchBatch, Opinion


class FakeExchange(Exchange):
    name = "fakefb"
    title = "Fake exchange"
    accepts_feedback = True
    accepts_contributions = True

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.opinions: list[Opinion] = []
        self.contributed: list[list[EntryRecord]] = []
        self.failures: list[ExchangeError] = []  # raised, first first, before anything is taken
        self.delay = 0.0  # seconds each call takes, as a remote source would

    def fetch(self, checkpoint: dict | None) -> Iterator[FetchBatch]:
        yield FetchBatch(records=[], checkpoint={}, done=True)

    def _maybe_fail(self) -> None:
        time.sleep(self.delay)
        if self.failures:
            raise self.failures.pop(0)

    def send_feedback(self, opinion: Opinion) -> None:
        self._maybe_fail()
        self.opinions.append(opinion)

    def contribute(self, records: Sequence[EntryRecord]) -> int:
        self._maybe_fail()
        self.contributed.append(list(records))
        return len(records)


class SilentExchange(FakeExchange):
    """A source that takes neither feedback nor contributions (e.g. a plain hash feed)."""

    name = "silent"
    accepts_feedback = False
    accepts_contributions = False


def unavailable(retry_after: float | None = None) -> ExchangeError:
    code = "exchange.rate_limited" if retry_after else "exchange.unavailable"
    return ExchangeError(code, "the source is unavailable", retryable=True, retry_after=retry_after)


def rejected() -> ExchangeError:
    return ExchangeError("exchange.rejected", "the source refused this opinion: unknown entry", retryable=False)
