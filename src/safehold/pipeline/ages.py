"""What the pipeline needs to know about ages: an account's band (safehold.agebands), from whoever keeps them.

The pipeline sits below the service that records age signals (:mod:`safehold.safety.ages`), so it names only
this small interface; :mod:`safehold.services` hands it the real one.
"""

from __future__ import annotations

from typing import Protocol


class AgeLookup(Protocol):
    def band(self, account_id: str | None) -> str:
        """The account's resolved band (``unknown`` for no account or nothing known)."""


class NoAges:
    """No age signals: every account is ``unknown`` (a pipeline built without an age book, in tests)."""

    def band(self, account_id: str | None) -> str:
        return "unknown"
