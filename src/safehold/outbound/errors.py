"""The error of a call to an outbound service (a hash exchange, an external classification service): a stable
code plus whether trying again later may succeed, so each caller's retry loop reads the same two attributes."""

from __future__ import annotations

from safehold.errors import SafeholdError


class OutboundError(SafeholdError):
    """A service call that failed; ``retryable`` errors are tried again after ``retry_after`` seconds (or the
    caller's back-off). 502 by default: the failure is the service's, not the request's."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        status: int = 502,
        detail: dict | None = None,
    ):
        super().__init__(code, message, status=status, detail=detail)
        self.retryable = retryable
        self.retry_after = retry_after
