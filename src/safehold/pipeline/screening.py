"""The pipeline's hook to the external classification services (:mod:`safehold.screening`), which sit above it.

After a submission's policy is applied, an image the scan accepted that no bank matched and no allow bank vouched
for is offered to the screening queue, whose worker later hands what a service found back to the pipeline as
``classifier`` signals. The queue is given by the wiring (:mod:`safehold.services`); ``offer`` never blocks and
never raises: a full queue, a failing store or a down service never delays or fails the scan's answer.
"""

from __future__ import annotations

from typing import Protocol


class ScreeningQueue(Protocol):
    def offer(
        self,
        media: bytes,
        *,
        filename: str | None,
        content_id: str | None,
        account_id: str | None,
        hashes: dict[str, str],
        age_reasons: list[str],
        age_context: dict,
    ) -> None:
        """Queue ``media`` for every enabled screening service, or count it skipped (queue full, no subject). The
        submission's age signal (``Submission.age_reasons`` and ``age_context``) is kept with the job: the result is
        judged by the pipeline's own rule (``Pipeline.judge``) when it comes back."""
