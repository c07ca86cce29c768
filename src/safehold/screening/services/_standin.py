"""What the screening services' stand-ins add to the outbound stand-in base: a log of every request as received
(so a test can prove what left the building — in PDQ mode, no image), and short names for the two broken answers a
classification call must survive besides a status, a dropped connection or a stall (``slow``): a body that is not
JSON and a body larger than the client reads."""

from __future__ import annotations

from safehold.outbound.standin import JsonStandIn, Reply, Request


class ScreeningStandIn(JsonStandIn):
    """A JSON stand-in that keeps every request it received and can garble or flood its answers."""

    label = "screening-standin"

    def __init__(self) -> None:
        super().__init__()
        #: Every request received (method, path, headers, body), faulted ones included, in order.
        self.received: list[Request] = []

    def malformed(self, *, times: int = 1) -> None:
        """The next ``times`` requests get HTTP 200 with a body that is not JSON."""
        self.fail(200, times=times, body=b"{this is not json")

    def oversized(self, size: int, *, times: int = 1) -> None:
        """The next ``times`` requests get HTTP 200 with a JSON string of ``size`` bytes."""
        self.fail(200, times=times, body=b'"' + b"x" * max(0, size - 2) + b'"')

    def answer(self, request: Request) -> Reply | None:
        with self._lock:
            self.received.append(request)
        return super().answer(request)
