"""Local stand-ins of the external classification services, to rehearse against (``safehold screening stand-in
TYPE``): each speaks its service's documented protocol on loopback with deterministic answers, so an operator can
configure a service, scan images and watch jobs, retries and review cases without sending anything anywhere.

A stand-in is a :class:`~safehold.outbound.standin.ServedStandIn` that also answers ``settings()`` and
``credentials()``: what ``safehold screening add`` needs to point a service at it.
"""

from __future__ import annotations

import importlib
from typing import Protocol

from safehold.errors import SafeholdError

#: Service type → (module, class) of its stand-in.
STANDINS: dict[str, tuple[str, str]] = {
    "google_csai": ("safehold.screening.services.google_standin", "GoogleStandIn"),
    "safer_predict": ("safehold.screening.services.safer_standin", "SaferStandIn"),
    "arachnid_shield": ("safehold.screening.services.arachnid_standin", "ArachnidStandIn"),
}


class Rehearsal(Protocol):
    url: str

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str: ...

    def stop(self) -> None: ...

    def settings(self) -> dict: ...

    def credentials(self) -> dict: ...


def start(type_name: str, *, host: str = "127.0.0.1", port: int = 0) -> Rehearsal:
    """The stand-in of ``type_name``, serving (``screening.no_standin`` for a type that has none)."""
    if type_name not in STANDINS:
        raise SafeholdError(
            "screening.no_standin",
            f"No stand-in for {type_name!r}; there is one for: {', '.join(sorted(STANDINS))}.",
        )
    module, attr = STANDINS[type_name]
    standin = getattr(importlib.import_module(module), attr)()
    standin.start(host=host, port=port)
    return standin
