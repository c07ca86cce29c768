"""Cases with stored media for review tests: benign generated pictures, recorded the way detectors do."""

from __future__ import annotations

from safehold.auth.apikeys import Principal
from safehold.cases.service import Detection, DetectionSignal
from tests.media import jpeg

ALICE = Principal(name="alice", role="reviewer", user_id=1)
BOB = Principal(name="bob", role="reviewer", user_id=2)
SENIOR = Principal(name="sam", role="senior_reviewer", user_id=3)


def media_case(svc, seed: int = 1, *, known: bool = False, data: bytes | None = None, **kw) -> tuple[int, int]:
    """Open a case about one image (a bank match when ``known``, else a classifier hit); (case id, item id)."""
    data = data if data is not None else jpeg(seed)
    source = "hash_match" if known else "classifier"
    detection = Detection(
        source=source,
        content_id=kw.pop("content_id", f"content-{seed}"),
        account_id=kw.pop("account_id", "account-1"),
        signals=[DetectionSignal(source=source, category="A1", confidence=1.0 if known else 0.7)],
        media=svc.vault.put(data),
        media_type=kw.pop("media_type", "image"),
        filename=kw.pop("filename", f"upload-{seed}.jpg"),
        known_match=known,
        **kw,
    )
    ref = svc.cases.record(detection, actor="apikey:platform")
    return ref.id, svc.cases.get(ref.id)["items"][0]["id"]


def audit_actions(svc, action: str) -> list[dict]:
    return svc.audit.list(limit=1000, action=action)
