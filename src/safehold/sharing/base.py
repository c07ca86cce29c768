"""The exchange interface: one small class per hash-sharing source (NCMEC, StopNCII, ThreatExchange, a peer, ...).

Modelled on python-threatexchange's ``SignalExchangeAPI``: an exchange *fetches* from a checkpoint it defines and
may *send opinions back* (feedback on an entry) and *take contributions* (new hashes). It is a client and nothing
else: it knows no database, no bank and no case. :class:`safehold.sharing.service.ExchangeService` stores its
settings, sealed credentials, checkpoint and status, writes what it fetches into the exchange's bank and runs it
on a schedule.

Fetch contract, relied on for crash safety and for "never duplicates an entry":

* :meth:`Exchange.fetch` yields :class:`FetchBatch` es in order. The service writes a batch's records **and** its
  ``checkpoint`` in one transaction, so a crash resumes from the last stored checkpoint. A fetch restarted from a
  checkpoint may see records again (entries are keyed by value, so a repeat is a no-op, and a repeated deletion
  withdraws nothing more).
* Records are :class:`EntryRecord` s: an addition per hash (``external_id`` is the source's id of the entry, so a
  later deletion of that id withdraws every hash of it) or a tombstone (:meth:`EntryRecord.tombstone`-style,
  ``signal_type == "*"``). ``source`` is left ``None``: the service sets it to the configured exchange's name.
* A hash of a type Safehold has no signal type for is **not dropped**: it goes in :attr:`FetchBatch.unknown`
  (kept, counted and shown in the exchange's status). A record the exchange could not parse is counted in
  :attr:`FetchBatch.malformed` with a sample message in :attr:`FetchBatch.problems`.
* Errors are :class:`ExchangeError` with a stable ``exchange.*`` code and ``retryable`` saying whether the next
  scheduled round should simply try again (network, 5xx, rate limit) or whether an operator must act (bad
  credentials, protocol violation).

An exchange plug-in package declares its class under the entry-point group ``safehold.exchanges``::

    [project.entry-points."safehold.exchanges"]
    acme = "acme_hashes:AcmeExchange"      # a safehold.sharing.base.Exchange subclass
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

import httpx
from pydantic import BaseModel, ConfigDict

from safehold.banks.formats._common import TOMBSTONE_SIGNAL_TYPE, EntryRecord
from safehold.outbound.errors import OutboundError

#: What a reviewer's decision on a match says about the entry that matched.
Verdict = Literal["true_positive", "false_positive"]


class ExchangeError(OutboundError):
    """A failure talking to a source. Codes (stable): ``exchange.unavailable`` (network, timeout, 5xx),
    ``exchange.rate_limited`` (``retry_after`` seconds when the source said), ``exchange.auth`` (credentials
    refused), ``exchange.protocol`` (an answer that breaks the documented protocol), ``exchange.not_supported``
    (this exchange takes no feedback / contributions), ``exchange.rejected`` (the source refused what was sent)."""


class Settings(BaseModel):
    """Base of an exchange's non-secret settings (stored as JSON, shown in the console). Unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Credentials(BaseModel):
    """Base of an exchange's secrets (stored sealed, never shown or logged back). Unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


@dataclass(frozen=True)
class UnknownSignal:
    """A hash of a type no installed signal type reads: kept and counted, matched once a plug-in reads it."""

    signal_type: str  # as the source names it, e.g. "PHOTODNA"
    value: str
    external_id: str | None = None


@dataclass
class FetchBatch:
    """One step of a fetch: records to apply, then ``checkpoint`` to store with them (JSON-serialisable)."""

    records: list[EntryRecord]
    checkpoint: dict
    unknown: list[UnknownSignal] = field(default_factory=list)
    malformed: int = 0
    problems: list[str] = field(default_factory=list)  # a few sample messages about malformed records
    #: The source says everything up to now has been read (the last batch of a round).
    done: bool = False
    #: With ``done``, from an exchange whose :attr:`Exchange.full_list` is set: this round yielded the source's
    #: whole list, so the service withdraws this exchange's entries the round did not yield.
    snapshot: bool = False


@dataclass(frozen=True)
class Opinion:
    """Feedback on one entry of the source: what a reviewer decided about content it matched."""

    external_id: str | None
    signal_type: str
    value: str
    verdict: Verdict
    reason: str | None = None  # e.g. "not_csam", "meme", "wrong_category" (mapped by each exchange)
    category: str | None = None


def tombstone(external_id: str) -> EntryRecord:
    """A deletion of every hash the source published under ``external_id``."""
    return EntryRecord(signal_type=TOMBSTONE_SIGNAL_TYPE, value="", external_id=external_id)


class Exchange(ABC):
    """A source of hashes. Subclasses set the class attributes and implement :meth:`fetch`.

    ``transport`` lets tests and benchmarks pass an ``httpx`` transport; ``timeout`` bounds every request.
    An exchange bounds what it reads: page sizes, response bodies (``max_body_bytes``) and record sizes.
    ``files`` is the one folder a source may read local files from (``SAFEHOLD_EXCHANGE_FILES_DIR``);
    ``bank_kind`` the kind of the bank it feeds.
    """

    #: Type name, lower-case (``ncmec``, ``stopncii``, ``threatexchange``, ``tat``, ``feed``, ``peer``).
    name: ClassVar[str]
    title: ClassVar[str]
    settings_model: ClassVar[type[Settings]] = Settings
    credentials_model: ClassVar[type[Credentials] | None] = None
    accepts_feedback: ClassVar[bool] = False
    accepts_contributions: ClassVar[bool] = False
    #: Seconds between scheduled fetches unless the operator sets another period.
    default_every: ClassVar[int] = 3600
    #: The source publishes a whole list, not changes: a round that ends with a ``snapshot`` batch yielded every
    #: entry from its first batch on (the service collects what it yielded only for such exchanges).
    full_list: ClassVar[bool] = False

    def __init__(
        self,
        settings: Settings,
        credentials: Credentials | None = None,
        *,
        timeout: float = 30.0,
        max_body_bytes: int = 64 << 20,
        transport: httpx.BaseTransport | None = None,
        files: Path | None = None,
        bank_kind: str | None = None,
    ):
        self.settings = settings
        #: The kind (``block``/``allow``) of the bank this exchange feeds, when the service knows it: a source that
        #: says what kind its list is (the peer exchange) is checked against it.
        self.bank_kind = bank_kind
        self.files = files
        self.credentials = credentials
        self.timeout = timeout
        self.max_body_bytes = max_body_bytes
        self.transport = transport

    @abstractmethod
    def fetch(self, checkpoint: dict | None) -> Iterator[FetchBatch]:
        """Everything new since ``checkpoint`` (``None``: from the start), in batches."""

    def check(self) -> None:  # noqa: B027 (optional hook: most sources have no cheap call)
        """Cheap call proving the settings and credentials work (``exchange add --check``); default: nothing."""

    def send_feedback(self, opinion: Opinion) -> None:
        """Tell the source what a reviewer decided about one of its entries."""
        raise ExchangeError("exchange.not_supported", f"{self.title} takes no feedback", retryable=False)

    def contribute(self, records: Sequence[EntryRecord]) -> int:
        """Send confirmed hashes (never media) to the source; answers how many it took."""
        raise ExchangeError("exchange.not_supported", f"{self.title} takes no contributions", retryable=False)
