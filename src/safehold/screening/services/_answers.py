"""What the built-in screening services share: their outbound client (:func:`client`, on
:class:`safehold.outbound.http.JsonHttp`) and the small readers that check a JSON answer's fields.

Failure mapping (the same for every service, so a job's retry decision never depends on which service failed):

==========================================  ==========================  =========
Answer                                      Code                        Retryable
==========================================  ==========================  =========
no answer in time, network error, 5xx       ``screening.unavailable``   yes
429 (``Retry-After`` seconds kept)          ``screening.rate_limited``  yes
401, 403                                    ``screening.auth``          no
400, 413, 415, 422 (the media was refused)  ``screening.rejected``      no
a redirect, another status, a body that is  ``screening.protocol``      no
not the documented JSON or is too large
a base URL the outbound rule refuses        ``screening.forbidden_url`` no
==========================================  ==========================  =========

Messages name the service and the status, and at most a short, scrubbed excerpt of the service's own error text:
never a credential (a service could echo one back) and never the media.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from safehold.outbound import http as outbound
from safehold.screening.base import ScreeningError, Settings
from safehold.screening.http import ERRORS, SUBJECT, refusals

#: Longest string field taken from an answer (hashes, classifications, ids).
MAX_FIELD_CHARS = 256


def client(
    title: str, settings: Settings, max_response_bytes: int, *, headers: Mapping[str, str], secrets: Iterable[str]
) -> outbound.JsonHttp:
    """One service's bounded client: its base URL, timeout and answer size; the credentials in ``headers``, and
    ``secrets`` scrubbed from every message."""
    secrets = tuple(s for s in secrets if s)
    return outbound.JsonHttp(
        settings.url, title=title, errors=ERRORS, subject=SUBJECT, timeout=settings.timeout_seconds,
        max_body_bytes=max_response_bytes, headers=headers, classify=refusals(title, secrets), secrets=secrets,
    )  # fmt: skip


def protocol(title: str, what: str) -> ScreeningError:
    """A 2xx answer that is not what the service documents."""
    return ScreeningError("screening.protocol", f"{title} answered {what}", retryable=False)


def text_field(obj: Mapping, key: str, title: str, *, required: bool = False) -> str | None:
    """A string field of an answer, at most :data:`MAX_FIELD_CHARS` long; ``None`` if absent or null."""
    value = obj.get(key)
    if value is None:
        if required:
            raise protocol(title, f"without its {key!r} field")
        return None
    if not isinstance(value, str) or len(value) > MAX_FIELD_CHARS:
        raise protocol(title, f"a {key!r} that is not a short string")
    return value


def probability(value: Any, key: str, title: str) -> float:
    """A score in [0, 1] from an answer (a bool or a NaN is not one)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise protocol(title, f"a score for {key!r} that is not a number")
    if not 0.0 <= value <= 1.0:
        raise protocol(title, f"a score for {key!r} outside [0, 1]")
    return float(value)
