"""Posts, profiles, listings, comments and messages checked for soliciting abuse material or access to children
(Principle 4), and the case it opens when it does.

:meth:`PostService.check` scores the text with the active solicitation scorer (:mod:`safehold.text.solicitation`,
built from the installation's term lists) and matches every link in it (at most ``MAX_URLS``) against the URL
banks, without fetching anything. A case is opened, or the subject's open case updated, when

- the score reaches ``SAFEHOLD_SOLICITATION_CASE_THRESHOLD`` (default 0.7, the scorer's "high"), or
- a link matched a block bank whose ``on_match`` is not ``none`` (whatever the score); an ``auto`` bank's
  automatic policies run exactly as for a matching event: the case is the pipeline's to open
  (:meth:`safehold.pipeline.service.Pipeline.submit`), as for every door.

Otherwise nothing is stored, not the text, not the answer: only the aggregate URL-scan counters move.

Idempotency: a key (``Idempotency-Key`` header or ``idempotency_key``) with the same body answers the stored result
again (``duplicate: true``), with a different body 409 ``text.idempotency_conflict``. Without a key one is derived
from ``content_id``, the SHA-256 of ``(kind, text)`` and the bank entries its links matched, so a platform's retry
of the same post never adds a second signal to its case, while a link banked since the first check is recorded.
Keys are kept only for checks that opened or updated a case (they share the event intake's idempotency table and
its ``SAFEHOLD_EVENT_KEY_DAYS`` retention).
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from safehold.auth.apikeys import Principal
from safehold.cases.detection import CaseRef, Detection, DetectionSignal
from safehold.config import Settings
from safehold.errors import SafeholdError, validated
from safehold.pipeline.events import IDEMPOTENCY_KEY_PATTERN, MAX_KEY, scoped_key
from safehold.pipeline.service import Pipeline, Submission
from safehold.rules.terms import TermLibrary
from safehold.scanning.service import ScanResult, ScanService, sees_provenance
from safehold.text.normalize import MAX_TEXT
from safehold.text.solicitation import KINDS, SolicitationResult

#: Links in one text matched against the URL banks; the rest are listed in the result but not matched.
MAX_URLS = 50
_CONFLICT = "text.idempotency_conflict"


class PostIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(max_length=MAX_TEXT, description="The text of the post, profile, listing, comment or message.")
    kind: Literal[KINDS] = "post"  # type: ignore[valid-type]
    content_id: str = Field(min_length=1, max_length=128, description="The platform's id of the item.")
    account_id: str | None = Field(None, min_length=1, max_length=128, description="The author's account id.")
    idempotency_key: str | None = Field(
        None, min_length=1, max_length=MAX_KEY, json_schema_extra={"pattern": IDEMPOTENCY_KEY_PATTERN}
    )
    metadata: dict = Field(default_factory=dict, description="Anything about the item the reviewer should see.")


def parse(body: object) -> PostIn:
    return body if isinstance(body, PostIn) else validated(PostIn, body, "the text check")


class PostService:
    def __init__(self, terms: TermLibrary, scans: ScanService, pipeline: Pipeline, settings: Settings):
        self.terms = terms
        self.scans = scans
        self.pipeline = pipeline
        self.settings = settings

    def check(self, principal: Principal, body: dict | PostIn, idempotency_key: str | None = None) -> dict:
        """Score one text, match its links, open or update a case if warranted (see the module docs).

        Returns ``{"accepted", "duplicate", "result", "url_matches", "case"}``: the scorer's result, the links
        that matched a bank (block or allow) with their matches, and the case (``None`` when none was touched).
        """
        post = parse(body)
        key = scoped_key(
            principal, idempotency_key, post.idempotency_key, required=False, prefix="text", namespace="text:"
        )
        if key is not None:  # the caller's key: a retry costs no scoring
            digest = _digest(post)
            seen = self.pipeline.replay(key, digest, conflict_code=_CONFLICT)
            if seen is not None:
                return seen

        result = self.terms.current().solicitation.score(post.text, post.kind)
        url_matches: list[dict] = []
        scans: list[ScanResult] = []
        for url in result.urls[:MAX_URLS]:
            try:
                scan = self.scans.scan_url(url, fetch_content=False, channel="text")
            except SafeholdError:
                continue  # a shape the URL canonicaliser refuses cannot be in a URL bank either
            if scan.matches:
                url_matches.append(_url_match(url, scan, provenance=sees_provenance(principal.role)))
                scans.append(scan)
        answer = {
            "accepted": True,
            "duplicate": False,
            "result": result.to_dict(),
            "url_matches": url_matches,
            "case": None,
        }
        detection = Detection(
            source="solicitation",
            content_id=post.content_id,
            account_id=post.account_id,
            signals=_text_signals(result, post.kind),
            media_type="text",
            text=post.text,
            item_metadata=dict(post.metadata),
        )
        sub = Submission(
            detection,
            scans=scans,
            source="solicitation",
            opens=result.score >= self.settings.solicitation_case_threshold,
        )

        def with_case(ref: CaseRef | None) -> dict:
            return {**answer, "case": ref.to_dict() if ref is not None else None}

        ruled = self.pipeline.rule(sub)
        if ruled is None:
            return answer  # below the threshold, nothing banked: no trace
        if key is None:
            digest = _derived(post, ruled.ruling)
            key = f"{principal.key_prefix or principal.label}:text-auto:{digest}"
        return self.pipeline.commit(
            ruled, key=key, digest=digest, actor=principal.label, answer=with_case, conflict_code=_CONFLICT
        )


def case_category(result: SolicitationResult) -> str:
    """``sextortion`` when the sextortion rule fired (a threat to share images, with or without payment), else
    ``solicitation``."""
    return "sextortion" if "sextortion" in result.categories else "solicitation"


def _text_signals(result: SolicitationResult, kind: str) -> list[DetectionSignal]:
    """The scorer's finding as one signal (none when it found nothing: a banked link alone opened the case)."""
    if result.score <= 0:
        return []
    detail = {
        "level": result.level,
        "explanation": result.explanation,
        "signals": result.signals,
        "urls": result.urls,
        "kind": kind,
    }
    return [
        DetectionSignal(source="solicitation", category=case_category(result), confidence=result.score, detail=detail)
    ]


def _url_match(url: str, scan: ScanResult, *, provenance: bool) -> dict:
    """A link that matched, with its matches; the entry's ``external_id`` (provenance) only for callers allowed
    to see it (see :func:`~safehold.scanning.service.sees_provenance`)."""
    matches = []
    for m in scan.matches:
        match = {
            "bank": m.bank,
            "bank_kind": m.bank_kind,
            "entry_id": m.entry.get("id"),
            "category": m.entry.get("category"),
        }
        if provenance:
            match["external_id"] = m.entry.get("external_id")
        matches.append(match)
    return {"url": url, "verdict": scan.verdict, "matches": matches}


def _digest(post: PostIn) -> str:
    """What "the same body" means: the same fields once parsed (defaults filled in, key order aside)."""
    canonical = json.dumps(post.model_dump(exclude={"idempotency_key"}), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _derived(post: PostIn, ruling: list[list]) -> str:
    """The key of a check sent without one: the item, the SHA-256 of what was scored and the bank entries its
    links matched (:attr:`~safehold.pipeline.service.Ruled.ruling`), so the same text for the same item is one
    check whatever else (account, metadata) a retry carries, but a link banked since makes it a new one."""
    text = hashlib.sha256(f"{post.kind}\0{post.text}".encode("utf-8", "surrogatepass")).hexdigest()
    found = json.dumps(ruling, separators=(",", ":"))
    return hashlib.sha256(f"{post.content_id}\0{text}\0{found}".encode("utf-8", "surrogatepass")).hexdigest()
