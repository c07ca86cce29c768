"""Which exchange types exist: the built-in ones plus plug-ins of the entry-point group ``safehold.exchanges``.

Built-ins are imported only when used (a server that follows no exchange imports none of their clients). A plug-in
that fails to import, is not an :class:`Exchange` subclass or reuses a taken name is reported with the shared
plug-in codes (``plugin.load_failed``, ``plugin.invalid``, ``plugin.name_clash``) and skipped.
"""

from __future__ import annotations

from safehold.entrypoints import Registry
from safehold.sharing.base import Exchange

ENTRY_POINT_GROUP = "safehold.exchanges"
#: Built-in exchange types: name → (module, class). Each module is under ``safehold.sharing.exchanges``.
BUILTIN: dict[str, tuple[str, str]] = {
    "stopncii": ("safehold.sharing.exchanges.stopncii", "StopNCIIExchange"),
    "threatexchange": ("safehold.sharing.exchanges.threatexchange", "ThreatExchangeExchange"),
    "tat": ("safehold.sharing.exchanges.tat", "TATExchange"),
    "feed": ("safehold.sharing.exchanges.feed", "FeedExchange"),
    "peer": ("safehold.sharing.exchanges.peer", "PeerExchange"),
    "ncmec": ("safehold.sharing.exchanges.ncmec", "NcmecExchange"),
}
REGISTRY: Registry[Exchange] = Registry(
    group=ENTRY_POINT_GROUP,
    kind="exchange",
    base=Exchange,
    key="name",
    builtin=BUILTIN,
    unknown_code="exchange.unknown_type",
)
names = REGISTRY.names
get = REGISTRY.get
