"""What the JSON-over-HTTPS exchanges (StopNCII, ThreatExchange, Tech Against Terrorism) share: the bounded request
of :mod:`safehold.outbound.http` raising :class:`~safehold.sharing.base.ExchangeError` with ``exchange.*`` codes,
and a batch builder that maps a source's hash types onto Safehold's signal types without dropping what it cannot
map.

Status mapping (a source may refine it with ``classify``): 401/403 → ``exchange.auth``; 429 →
``exchange.rate_limited`` (with the ``Retry-After`` seconds); 5xx, timeouts and network errors →
``exchange.unavailable``; anything else unexpected, a body over the exchange's ``max_body_bytes`` or a body that is
not a JSON object → ``exchange.protocol``.

:func:`check_source_url` is the one rule for where an exchange may connect (every client applies it to its base URL
and to each redirect it would follow).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from safehold.banks.formats._common import EntryRecord
from safehold.errors import SafeholdError
from safehold.outbound import http as outbound
from safehold.outbound.http import Classifier, retry_after
from safehold.sharing.base import Exchange, ExchangeError, FetchBatch, UnknownSignal
from safehold.signals import registry as signals

__all__ = ["BatchBuilder", "Classifier", "JsonHttp", "check_source_url", "retry_after", "url_setting"]

#: How many sample messages about malformed records one batch keeps.
MAX_PROBLEMS = 5
#: Longest hash value taken from a source (a longer one is a malformed record, not something to store).
MAX_VALUE_CHARS = 4096

#: Exchange failures: ``exchange.<kind>``.
ERRORS = outbound.prefixed(ExchangeError, "exchange")
SUBJECT = "An exchange"


def check_source_url(url: str) -> str:
    """``url`` if an exchange may connect to it, else ``exchange.forbidden_url``
    (:func:`safehold.outbound.http.check_source_url`)."""
    return outbound.check_source_url(url, errors=ERRORS, subject=SUBJECT)


def url_setting(url: str) -> str:
    """:func:`check_source_url` for a settings validator: a refusal is a ``ValueError``, so the settings are
    refused as ``exchange.invalid_settings`` naming the field and why."""
    return outbound.url_setting(url, errors=ERRORS, subject=SUBJECT)


class JsonHttp(outbound.JsonHttp):
    """The outbound JSON client bound to one exchange's timeout, transport and body limit, raising
    ``exchange.*`` errors."""

    def __init__(
        self,
        exchange: Exchange,
        base_url: str,
        *,
        title: str,
        headers: Mapping[str, str] | None = None,
        classify: Classifier | None = None,
        secrets: tuple[str, ...] = (),
    ):
        super().__init__(
            base_url, title=title, errors=ERRORS, subject=SUBJECT, timeout=exchange.timeout,
            max_body_bytes=exchange.max_body_bytes, transport=exchange.transport, headers=headers,
            classify=classify, secrets=secrets,
        )  # fmt: skip


class BatchBuilder:
    """Collects one page's records: mapped hashes, tombstones, unknown types and malformed records.

    ``type_map`` maps the source's type names to Safehold signal type names; a source type missing from it, or
    mapped to a type this installation does not have, goes to :attr:`FetchBatch.unknown` (kept, not dropped). A
    value the signal type refuses (e.g. a PDQ hash of the wrong length) is a malformed record.
    """

    def __init__(self, type_map: Mapping[str, str]):
        self._type_map = type_map
        self._installed = signals.all_signal_types()
        self.records: list[EntryRecord] = []
        self.unknown: list[UnknownSignal] = []
        self.malformed = 0
        self.problems: list[str] = []

    def bad(self, message: str) -> None:
        """Count a record that could not be read; keep the first few messages."""
        self.malformed += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(message)

    def delete(self, record: EntryRecord) -> None:
        self.records.append(record)

    def add(
        self,
        source_type: str,
        value: Any,
        external_id: str,
        *,
        category: str | None = None,
        metadata: dict | None = None,
    ) -> None:
        """One hash of the source, mapped to a signal type or kept as unknown."""
        if not isinstance(value, str) or not value or len(value) > MAX_VALUE_CHARS:
            self.bad(f"entry {external_id}: the {source_type} value is missing or not a usable string")
            return
        name = self._type_map.get(source_type)
        if name is None or name not in self._installed:
            self.unknown.append(UnknownSignal(signal_type=source_type, value=value, external_id=external_id))
            return
        try:
            value = self._installed[name].normalize(value)
        except SafeholdError as exc:
            self.bad(f"entry {external_id}: {exc.message}")
            return
        self.records.append(
            EntryRecord(
                signal_type=name, value=value, external_id=external_id, category=category, metadata=metadata or {}
            )
        )

    def batch(self, checkpoint: dict, *, done: bool) -> FetchBatch:
        return FetchBatch(
            records=self.records, checkpoint=checkpoint, unknown=self.unknown,
            malformed=self.malformed, problems=self.problems, done=done,
        )  # fmt: skip
