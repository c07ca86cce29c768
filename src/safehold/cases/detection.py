"""What a detector hands to cases: a detection about one subject, with its signals and (optionally) its item.

Detectors (scanning, classifiers, text, live) and intake (events, user reports) build these; they know nothing
of how cases are stored. :meth:`~safehold.cases.service.CaseService.record` turns one into a case.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from safehold.errors import SafeholdError
from safehold.store.vault import StoredMedia

#: Where a detection comes from. ``hash_match`` is reserved for Safehold's own block-bank matches, ``rematch`` for
#: those found later, when a bank gained the hash of content seen before (safehold.sharing.rematch).
SOURCES = ("hash_match", "classifier", "grooming", "solicitation", "user_report", "livestream", "event", "rematch")
#: The sources only Safehold itself records.
OWN_SOURCES = ("hash_match", "rematch")
#: The console queue each source waits in; ``event`` depends on the content (see :func:`queue_for`).
SOURCE_QUEUES = {
    "hash_match": "media",
    "rematch": "media",
    "classifier": "media",
    "grooming": "text",
    "solicitation": "text",
    "user_report": "report",
    "livestream": "live",
}


@dataclass
class DetectionSignal:
    """One piece of evidence: a bank match, a classifier score, a report. ``category`` is a taxonomy category
    (A1, csam, grooming, …) or any slug (treated as ``other`` in the priority formula)."""

    source: str
    signal_type: str | None = None
    value: str | None = None
    bank: str | None = None
    entry_id: int | None = None
    category: str | None = None
    confidence: float = 1.0
    distance: int | None = None
    detail: dict = field(default_factory=dict)


@dataclass
class Detection:
    """Evidence about one subject: a content item (and the account behind it) or an account alone.

    ``media`` is set only when the file is already in the media vault (it matched, or signals came with it).
    ``item_metadata`` describes the content item; ``metadata`` is platform metadata about the subject (account
    information, IP events, …) and is merged into the case's.
    """

    source: str
    content_id: str | None = None
    account_id: str | None = None
    signals: list[DetectionSignal] = field(default_factory=list)
    media: StoredMedia | None = None
    media_type: str | None = None
    filename: str | None = None
    text: str | None = None
    url: str | None = None
    uploaded_at: dt.datetime | None = None
    item_metadata: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    known_match: bool = False

    @property
    def has_item(self) -> bool:
        """Whether the detection is about a content item (not only an account)."""
        return bool(self.content_id or self.media or self.text or self.url or self.filename)


@dataclass(frozen=True)
class CaseRef:
    id: int
    created: bool
    status: str
    band: str
    priority: float

    def to_dict(self) -> dict:
        return {"id": self.id, "created": self.created, "status": self.status, "band": self.band}


def subject_key(d: Detection) -> str:
    """The subject a detection is about; one open case per subject: ``content:<content id>``, else
    ``account:<account id>``.

    A detection naming neither is refused (``case.no_subject``): a case nobody can act on — no content to take
    down, no account to suspend or report — would only wait in a queue. Doors that may see such input (a bare hash
    or an anonymous file scan) treat it as a lookup and record nothing (docs/cases.md).
    """
    if d.content_id:
        return f"content:{d.content_id}"
    if d.account_id:
        return f"account:{d.account_id}"
    raise SafeholdError("case.no_subject", "A detection needs a content id or an account id to open a case.")


def queue_for(d: Detection) -> str:
    """The queue a new case waits in, from the detection's source; a generic ``event`` goes to the account
    queue when it carries no content, else to the media or text queue by what the content is."""
    if d.source in SOURCE_QUEUES:
        return SOURCE_QUEUES[d.source]
    if not d.has_item:
        return "account"
    return "text" if d.media is None and (d.media_type == "text" or (d.text and not d.url)) else "media"


def check(d: Detection) -> None:
    if d.source not in SOURCES:
        raise SafeholdError("case.invalid_source", f"Detection source must be one of {', '.join(SOURCES)}.")
    for sig in d.signals:
        if sig.source not in SOURCES:
            raise SafeholdError("case.invalid_source", f"Signal source must be one of {', '.join(SOURCES)}.")
        if not 0.0 <= float(sig.confidence) <= 1.0:
            raise SafeholdError("case.invalid_confidence", "A signal's confidence is between 0 and 1.")
