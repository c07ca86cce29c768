"""Outbound HTTP for the screening services: :mod:`safehold.outbound.http` raising
:class:`~safehold.screening.base.ScreeningError` with ``screening.*`` codes.

Codes: ``screening.unavailable`` (network, timeout, 5xx: retried), ``screening.rate_limited`` (429: retried after
its ``Retry-After``), ``screening.auth`` (401/403: not retried, the operator must fix the credentials),
``screening.rejected`` (the service refused the media: 400, 413, 415, 422), ``screening.protocol`` (an answer
that breaks the documented protocol), ``screening.forbidden_url`` (a URL Safehold may not connect to).
"""

from __future__ import annotations

from typing import Any

import httpx

from safehold.outbound import http as outbound
from safehold.screening.base import ScreeningError

ERRORS = outbound.prefixed(ScreeningError, "screening")
SUBJECT = "A screening service"
#: Statuses by which a service says it will not classify this media (a retry would be refused the same way).
REFUSED = frozenset({400, 413, 415, 422})


def url_setting(url: str) -> str:
    """A settings validator: ``url`` if a screening service may be called there (https://, or http:// to this
    machine for a stand-in), else a ``ValueError`` naming why."""
    return outbound.url_setting(url, errors=ERRORS, subject=SUBJECT)


def refused_media(response: httpx.Response, parsed: Any) -> ScreeningError | None:
    """``screening.rejected`` for a status by which the service refused the media; ``None`` for the rest."""
    if response.status_code in REFUSED:
        return ScreeningError(
            "screening.rejected", f"The service refused the media (HTTP {response.status_code}).",
            retryable=False, detail={"status": response.status_code},
        )  # fmt: skip
    return None
