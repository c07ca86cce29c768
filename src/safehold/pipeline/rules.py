"""The pipeline's hook to the operator rules (:mod:`safehold.rules.book`), which sit above it.

After bank and classifier policy, the pipeline hands the rule book what it saw about a submission (the bank
matches, every classifier score, the door's own signals); the book evaluates its live and shadow CEL rules and
answers the live rules' effects, which the pipeline applies as it records the case (docs/rules.md). Shadow rules'
hits are the book's own business: it records them and never returns them, so a shadow rule cannot act.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from safehold.cases.detection import DetectionSignal
    from safehold.classifiers.base import Classification
    from safehold.pipeline.service import Submission


@dataclass(frozen=True)
class RuleEffect:
    """A live rule that matched and what it does: ``effect`` is ``{"type": ..., **params}``
    (:data:`safehold.rules.engine.EFFECTS`)."""

    rule: str
    version: int
    effect: dict


class RuleHook(Protocol):
    def evaluate(
        self, sub: Submission, matches: Sequence[DetectionSignal], classified: Sequence[Classification]
    ) -> list[RuleEffect]:
        """The effects of the live rules that match the submission; never raises (a rule that errs does not match)."""


class NoRules:
    """No operator rules (a pipeline built without a rule book, in tests)."""

    def evaluate(self, sub, matches, classified) -> list[RuleEffect]:
        return []
