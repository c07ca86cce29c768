"""Which external classification service types exist: the built-in ones plus plug-ins of the entry-point group
``safehold.screening`` (:mod:`safehold.screening.base`).

Built-ins are imported only when used (an installation that configures no service imports no client). A plug-in
that fails to import, is not a :class:`ScreeningService` subclass or reuses a taken type is reported with the
shared plug-in codes (``plugin.load_failed``, ``plugin.invalid``) and skipped, never stopping Safehold.
"""

from __future__ import annotations

from safehold.entrypoints import Registry
from safehold.screening.base import ScreeningService

ENTRY_POINT_GROUP = "safehold.screening"
#: Built-in service types: type → (module, class).
BUILTIN: dict[str, tuple[str, str]] = {
    "google_csai": ("safehold.screening.services.google", "GoogleContentSafety"),
    "safer_predict": ("safehold.screening.services.safer", "SaferPredict"),
    "arachnid_shield": ("safehold.screening.services.arachnid", "ArachnidShield"),
}
#: A built-in whose module is absent is left out (the adapters land one by one).
REGISTRY: Registry[ScreeningService] = Registry(
    group=ENTRY_POINT_GROUP,
    kind="screening service",
    base=ScreeningService,
    key="type",
    builtin=BUILTIN,
    unknown_code="screening.unknown_type",
    optional_builtins=True,
)
names = REGISTRY.names
get = REGISTRY.get
