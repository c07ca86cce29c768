"""The pipeline's hook to the operator rules (:mod:`safehold.rules.book`), which sit above it.

After bank and classifier policy, the pipeline hands the rule book what it saw about a submission (the bank
matches, every classifier score, the door's own signals); the book evaluates its live and shadow CEL rules and
answers the live rules' effects, which the pipeline applies as it records the case (docs/rules.md). Shadow rules'
hits come back beside them, opaque to the pipeline, which never acts on them: it hands them back to the book
(:meth:`RuleHook.record_shadow`) once the detection is recorded, after the idempotency claim, in the transaction that
recorded it, so a retried event is not counted twice in the shadow figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

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


@dataclass(frozen=True)
class RuleOutcome:
    """What the rules made of a submission: the live rules' effects, and what the shadow rules would have done
    (the book's own records, which the pipeline hands back to :meth:`RuleHook.record_shadow` and never reads)."""

    effects: list[RuleEffect] = field(default_factory=list)
    shadow: list[dict] = field(default_factory=list)


class RuleHook(Protocol):
    def evaluate(
        self, sub: Submission, matches: Sequence[DetectionSignal], classified: Sequence[Classification]
    ) -> RuleOutcome:
        """The live rules that match the submission and the shadow rules' would-be hits; never raises (a rule that
        errs does not match)."""

    def record_shadow(self, s: Session | None, hits: list[dict], case_id: int | None = None) -> None:
        """Keep shadow hits (with the case the detection opened or updated, if any) once ``s`` commits (the
        detection's own transaction, after its idempotency claim), or at once when ``s`` is None (a detection that
        records nothing, so has no claim to wait for)."""


class NoRules:
    """No operator rules (a pipeline built without a rule book, in tests)."""

    def evaluate(self, sub, matches, classified) -> RuleOutcome:
        return RuleOutcome()

    def record_shadow(self, s, hits, case_id=None) -> None:
        pass
