"""The search guard in service (Principle 6): checks and suggestion filtering through the active term lists, and
aggregate counters a platform can read to see what the guard does and compare message variants.

Counted, per UTC day, in memory and flushed to ``search_counts`` by the upkeep loop (like the scan counters):

- ``check``: one per query checked, by action (``allow``, ``support``, ``warn``, ``block``), rule category,
  message variant (none for ``support``) and the primary tag of the locale the message was resolved to
  (``pt-BR`` → ``pt``);
- ``suggestion``: one per autocomplete suggestion removed, by rule category;
- ``help_click``: one per click on a help resource the platform reports, by category, variant and locale.

Never counted or stored: the query or suggestion text, the caller's bucket, a user, a session, an IP address. A
count is only ever tied to the few fields above, all of which come from small closed sets.
"""

from __future__ import annotations

from safehold.errors import SafeholdError
from safehold.rules.terms import TermLibrary
from safehold.store.counters import DailyCounts
from safehold.store.db import Database
from safehold.store.models import SearchCount
from safehold.text.search import RULES, SUPPORT

#: The categories a decision (and so a help resource shown with it) can carry.
CATEGORIES = tuple(dict.fromkeys(r.category for r in RULES))
_FIELDS = ("kind", "action", "category", "variant", "locale")


def _primary(locale: str) -> str:
    return locale.partition("-")[0]


class SearchService:
    """Query checks and suggestion filtering with the active detectors, plus aggregate counters (thread-safe)."""

    def __init__(self, db: Database, terms: TermLibrary):
        self.db = db
        self.terms = terms
        # (kind, action, category, variant, locale) -> n; "" stands for "none".
        self._counts = DailyCounts(db, SearchCount, _FIELDS)

    # ------------------------------------------------------------------ the hot path

    def check(self, query: str, locale: str = "en", bucket: str | None = None) -> dict:
        """The guard's decision (see :meth:`safehold.text.search.QueryGuard.check`) as a dict; counted."""
        d = self.terms.current().guard.check(query, locale, bucket=bucket)
        self._counts.add(("check", d.action, d.category or "", d.variant or "", _primary(d.locale)))
        return d.to_dict()

    def filter_suggestions(self, suggestions: list[str], locale: str = "en") -> tuple[list[str], dict[str, int]]:
        """The suggestions safe to show, in order, and how many were removed per category; removals counted."""
        kept, removed = self.terms.current().guard.filter_suggestions(suggestions, locale)
        for category, n in removed.items():
            self._counts.add(("suggestion", "remove", category, "", ""), n)
        return kept, removed

    def help_click(self, category: str, variant: str | None, locale: str = "en") -> dict:
        """Count one click on a help resource shown with a ``category`` decision in message ``variant`` (a
        ``support`` decision has one message, so no variant)."""
        if category not in CATEGORIES:
            raise SafeholdError(
                "search.unknown_category",
                f"category must be one of {', '.join(CATEGORIES)}, not {category!r}.",
                status=422,
                detail={"categories": list(CATEGORIES)},
            )
        guard = self.terms.current().guard
        if category == SUPPORT:
            variant = None
        elif variant not in guard.variants:
            raise SafeholdError(
                "search.unknown_variant",
                f"variant must be one of {', '.join(guard.variants)}, not {variant!r}.",
                status=422,
                detail={"variants": list(guard.variants)},
            )
        loc = _primary(guard.resolve_locale(locale))
        self._counts.add(("help_click", "", category, variant or "", loc))
        return {"counted": True, "category": category, "variant": variant, "locale": loc}

    # ------------------------------------------------------------------ persistence

    def flush_counts(self) -> None:
        """Add the buffered counters to ``search_counts``; on failure they are kept for the next flush."""
        self._counts.flush()

    def stats(self, days: int = 30) -> list[dict]:
        """The counters of the last ``days`` UTC days (today included), oldest first; "none" fields are ``None``."""
        return [{k: (v or None) if k in _FIELDS else v for k, v in r.items()} for r in self._counts.recent(days)]


def variant_summary(rows: list[dict]) -> dict[str, dict]:
    """Per message variant: messages shown (warn + block checks), help clicks and the click-through rate, so
    variants can be compared (an A/B test; compare like with like, e.g. per category, before drawing
    conclusions)."""
    out: dict[str, dict] = {}
    for r in rows:
        if not r["variant"] or r["kind"] not in ("check", "help_click"):
            continue
        v = out.setdefault(r["variant"], {"shown": 0, "help_clicks": 0, "click_rate": None})
        v["shown" if r["kind"] == "check" else "help_clicks"] += r["count"]
    for v in out.values():
        v["click_rate"] = round(v["help_clicks"] / v["shown"], 4) if v["shown"] else None
    return dict(sorted(out.items()))
