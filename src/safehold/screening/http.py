"""Outbound HTTP for the screening services: :mod:`safehold.outbound.http` raising
:class:`~safehold.screening.base.ScreeningError` with ``screening.*`` codes.

Codes: ``screening.unavailable`` (network, timeout, 5xx: retried), ``screening.rate_limited`` (429: retried after
its ``Retry-After``), ``screening.auth`` (401/403: not retried, the operator must fix the credentials),
``screening.rejected`` (the service refused the media: 400, 413, 415, 422), ``screening.protocol`` (an answer
that breaks the documented protocol), ``screening.forbidden_url`` (a URL Safehold may not connect to).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from safehold.errors import SafeholdError
from safehold.outbound import http as outbound
from safehold.screening.base import ScreeningError

#: How a screening call's failures are made: ``screening.<kind>`` :class:`ScreeningError`.
ERRORS = outbound.prefixed(ScreeningError, "screening")
SUBJECT = "A screening service"
#: Statuses by which a service says it will not classify this media (a retry would be refused the same way).
REFUSED = frozenset({400, 413, 415, 422})
#: Longest excerpt of a service's own error text kept in a message.
MAX_ERROR_TEXT = 200


def url_setting(url: str) -> str:
    """A settings validator: ``url`` if a screening service may be called there (https://, or http:// to this
    machine for a stand-in), else a ``ValueError`` naming why."""
    return outbound.url_setting(url, errors=ERRORS, subject=SUBJECT)


def refusals(title: str, secrets: Iterable[str] = ()):
    """The refinement of the outbound mapping every service uses: a status by which the service refused the media
    is ``screening.rejected`` (not retried), with the service's own reason, short and scrubbed of ``secrets``;
    every other status keeps the generic mapping."""
    secrets = tuple(s for s in secrets if s)

    def classify(response: httpx.Response, parsed: Any) -> SafeholdError | None:
        if response.status_code not in REFUSED:
            return None
        said = service_text(parsed, secrets)
        return ScreeningError(
            "screening.rejected", f"{title} refused the media (HTTP {response.status_code})"
            + (f": {said}" if said else ""), retryable=False, detail={"status": response.status_code},
        )  # fmt: skip

    return classify


def service_text(body: Any, secrets: Iterable[str] = ()) -> str:
    """The service's own short error text (``detail``, ``message`` or ``error``, or the ``message`` of an
    ``error`` object as Google answers it), bounded and scrubbed."""
    if not isinstance(body, Mapping):
        return ""
    for key in ("detail", "message", "error"):
        value = body.get(key)
        if isinstance(value, Mapping):
            value = value.get("message")
        if isinstance(value, str) and value.strip():
            text = value.strip()[:MAX_ERROR_TEXT]
            for secret in secrets:
                text = text.replace(secret, "***")
            return text
    return ""
