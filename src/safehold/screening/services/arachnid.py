"""C3P's Arachnid Shield: known-material matching against the Canadian Centre for Child Protection's database of
classified images and videos, by upload, by URL, or by PDQ hash alone.

Arachnid Shield recognises material C3P's analysts have already classified (exactly, by cryptographic hash, or
visually, by perceptual hash); it is not a classifier of new material, so its answers are certain or absent, never
a probability. It runs as a screening service (off the hash-matching path, through the job queue) because it is an
outside service with an outside database: its hits go to human review like every screening result.

The protocol (public facts: C3P's SDKs ``arachnid-shield-sdk`` on PyPI and npm, ``arachnid/shield`` on Packagist,
the ``arachnid-shield`` crate's documentation, and public notes on the service's OpenAPI 1.1.0 description):

- Base URL ``https://shield.projectarachnid.com/`` (``.ca`` also answers); HTTP Basic authentication with the
  username and password C3P issues.
- ``POST v1/media/``: the media's bytes as the body, ``Content-Type`` its MIME type (``image/*`` or ``video/*``).
  Answers a *ScannedMedia*: ``classification`` (``csam``, ``harmful-abusive-material``, ``test`` or
  ``no-known-match``), ``match_type`` (``exact`` — a SHA-1 match, ``near`` — a visual match, or null),
  ``is_match``, ``sha1_base32``, ``sha256_hex``, ``size_bytes`` and ``near_match_details`` (the matched items:
  their classification, hashes and, for a video, the ``timestamp`` where the match was found).
- ``POST v1/url/`` with ``{"url": …}``: C3P fetches the media itself (the URL's domain must be registered with
  the account) and answers a *ScannedMedia*.
- ``POST v1/pdq/`` with ``{"hashes": [base64 PDQ, …]}``: answers ``{"scanned_hashes": {hash: {classification,
  match_type, near_match_details}}}``. A PDQ hash is sent as the base64 of its 32 bytes (Safehold's hex form
  decoded, in the same order).
- Errors are JSON ``{"detail": …}`` with the HTTP status.

Assumed (not documented publicly): ``near_match_details`` is a list in media answers and a single object in PDQ
answers (the SDKs disagree, so both shapes are read); a ``distance`` field, if the service adds one to a near
match, is kept for the reviewer; rate limits and the largest accepted upload are not published (the operator sets
``requests_per_minute``; a 413 is ``screening.rejected``).

What leaves the building: in ``mode: media`` (the default) the file itself; in ``mode: pdq`` only its PDQ hash (a
video, or an image without a PDQ, is then not sent at all: ``screening.not_supported``); :meth:`scan_url` sends
only a URL, for media the platform already serves publicly.

Label mapping — the one place it is decided (:data:`CLASSIFICATIONS`):

============================  ============================  =====
Arachnid classification       Label                         Score
============================  ============================  =====
``csam``                      ``csam``                      1.0
``harmful-abusive-material``  ``harmful_abusive_material``  0.9
``test``                      ``arachnid_test``             1.0
``no-known-match``            (no score: no hit)            —
any other (a new class)       ``unclassified_match``        0.9
============================  ============================  =====

Harmful/abusive material is C3P's class for images of children that are harmful in context but may not be illegal
everywhere: a hit for review, never grounds for an automatic report. ``test`` is C3P's test image: a hit, so an
operator can watch a case open end to end.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, field_validator

from safehold.classifiers.base import Score
from safehold.screening.base import Credentials, Media, ScreeningError, ScreeningService, Settings
from safehold.screening.http import url_setting
from safehold.screening.services._answers import client, protocol, text_field

TITLE = "Arachnid Shield"
MEDIA_PATH = "v1/media/"
URL_PATH = "v1/url/"
PDQ_PATH = "v1/pdq/"

#: Arachnid's classification → (label, score); ``None``: no hit.
CLASSIFICATIONS: dict[str, tuple[str, float] | None] = {
    "csam": ("csam", 1.0),
    "harmful-abusive-material": ("harmful_abusive_material", 0.9),
    "test": ("arachnid_test", 1.0),
    "no-known-match": None,
}
#: The label and score of a match whose classification this version does not know.
UNKNOWN_CLASSIFICATION = ("unclassified_match", 0.9)
#: Media types the media endpoint takes.
ACCEPTED_TYPES = ("image/", "video/")
#: Near matches kept in a score's detail (a video can match in many places).
MAX_NEAR_MATCHES = 10
#: Fields of a near match kept for the reviewer.
NEAR_MATCH_FIELDS = ("classification", "sha1_base32", "sha256_hex", "timestamp", "distance")
#: The PDQ sent by :meth:`ArachnidShield.check`: all zero bits, the hash of no real photo.
CHECK_PDQ = "0" * 64


class ArachnidSettings(Settings):
    url: str = Field("https://shield.projectarachnid.com", max_length=500)
    #: ``media``: send the file; ``pdq``: send only its PDQ hash (no image leaves the building).
    mode: Literal["media", "pdq"] = "media"
    #: Largest answer read (a ScannedMedia is a few kilobytes).
    max_response_bytes: int = Field(1 << 20, ge=1024, le=16 << 20)

    _safe_url = field_validator("url")(url_setting)


class ArachnidCredentials(Credentials):
    username: str = Field(min_length=1, max_length=500, repr=False)
    password: str = Field(min_length=1, max_length=500, repr=False)


@dataclass(frozen=True)
class Outgoing:
    """One request to build: its path under the base URL, and a JSON body or raw content with its type."""

    path: str
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


def pdq_base64(pdq_hex: str) -> str:
    """A PDQ hash as Arachnid takes it: the base64 of its 32 bytes."""
    try:
        raw = bytes.fromhex(pdq_hex)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise ScreeningError(
            "screening.not_supported", "A PDQ hash for Arachnid Shield must be 64 hex characters.", retryable=False
        )
    return base64.b64encode(raw).decode("ascii")


def request_for(media: Media, mode: str) -> Outgoing:
    """What :meth:`ArachnidShield.classify` sends for ``media`` in ``mode``: the file, or only its PDQ hash."""
    if mode == "pdq":
        if not media.pdq:
            raise ScreeningError(
                "screening.not_supported",
                "Arachnid Shield is set to PDQ mode and this media has no PDQ hash (a video or an image too "
                "featureless to hash); nothing was sent.",
                retryable=False,
            )
        return Outgoing(PDQ_PATH, json={"hashes": [pdq_base64(media.pdq)]})
    content_type = (media.content_type or "").split(";", 1)[0].strip().lower()
    if not content_type.startswith(ACCEPTED_TYPES):
        raise ScreeningError(
            "screening.not_supported",
            f"Arachnid Shield scans images and videos; {content_type or 'media of no type'} was not sent.",
            retryable=False,
        )
    return Outgoing(MEDIA_PATH, content=media.data, headers={"Content-Type": content_type})


def url_request(url: str) -> Outgoing:
    """What :meth:`ArachnidShield.scan_url` sends: the media's public URL."""
    if not isinstance(url, str) or not url.startswith(("https://", "http://")) or len(url) > 2048:
        raise ScreeningError(
            "screening.not_supported", "Arachnid Shield scans an http(s) URL of at most 2048 characters.",
            retryable=False, status=400,
        )  # fmt: skip
    return Outgoing(URL_PATH, json={"url": url})


def scores_from_media(body: Any, *, mode: str = "media") -> list[Score]:
    """The scores of a ScannedMedia answer (media and URL endpoints)."""
    if not isinstance(body, Mapping):
        raise protocol(TITLE, "something that is not a ScannedMedia object")
    detail = {
        "sha1_base32": text_field(body, "sha1_base32", TITLE),
        "sha256_hex": text_field(body, "sha256_hex", TITLE),
    }
    size = body.get("size_bytes")
    if isinstance(size, int) and not isinstance(size, bool) and size >= 0:
        detail["size_bytes"] = size
    return _scores(body, {**detail, "mode": mode})


def scores_from_pdq(body: Any, sent: str) -> list[Score]:
    """The scores of a PDQ answer for the one hash ``sent`` (base64)."""
    scanned = body.get("scanned_hashes") if isinstance(body, Mapping) else None
    if not isinstance(scanned, Mapping):
        raise protocol(TITLE, "a PDQ answer without its 'scanned_hashes' object")
    answer = scanned.get(sent)
    if answer is None and len(scanned) == 1:  # the same hash, written another way (padding, alphabet)
        answer = next(iter(scanned.values()))
    if not isinstance(answer, Mapping):
        raise protocol(TITLE, "a PDQ answer that does not cover the hash sent")
    return _scores(answer, {"mode": "pdq", "pdq_base64": sent})


def _scores(answer: Mapping, detail: dict) -> list[Score]:
    classification = text_field(answer, "classification", TITLE, required=True) or ""
    mapped = CLASSIFICATIONS.get(classification, UNKNOWN_CLASSIFICATION)
    if mapped is None:
        return []
    match_type = text_field(answer, "match_type", TITLE)
    if match_type not in (None, "exact", "near"):
        raise protocol(TITLE, f"an unknown match_type {match_type!r}")
    label, score = mapped
    full = {
        "service": ArachnidShield.type,
        "classification": classification,
        "match_type": match_type,
        **{k: v for k, v in detail.items() if v is not None},
        "near_matches": near_matches(answer.get("near_match_details")),
    }
    return [Score(label, score, full)]


def near_matches(value: Any) -> list[dict]:
    """The matched items a reviewer sees (a list or a single object; at most :data:`MAX_NEAR_MATCHES`)."""
    items = [value] if isinstance(value, Mapping) else value if isinstance(value, list) else []
    out = []
    for item in items[:MAX_NEAR_MATCHES]:
        if not isinstance(item, Mapping):
            raise protocol(TITLE, "a near match that is not an object")
        kept = {}
        for key in NEAR_MATCH_FIELDS:
            value = item.get(key)
            if isinstance(value, str):
                value = text_field(item, key, TITLE)
            elif not (value is None or (isinstance(value, int | float) and not isinstance(value, bool))):
                raise protocol(TITLE, f"a near match whose {key!r} is neither text nor a number")
            if value is not None:
                kept[key] = value
        out.append(kept)
    return out


class ArachnidShield(ScreeningService):
    """Arachnid Shield by upload or by PDQ hash (``mode``), and by URL (:meth:`scan_url`)."""

    type = "arachnid_shield"
    description = "C3P's Arachnid Shield: known CSAM and harmful/abusive material, by media, URL or PDQ hash"
    labels = ("csam", "harmful_abusive_material", "arachnid_test", "unclassified_match")
    threshold = 0.5
    settings_model = ArachnidSettings
    credentials_model = ArachnidCredentials

    settings: ArachnidSettings
    credentials: ArachnidCredentials

    def classify(self, media: Media) -> list[Score]:
        outgoing = request_for(media, self.settings.mode)
        body = self._send(outgoing)
        if outgoing.path == PDQ_PATH:
            return scores_from_pdq(body, outgoing.json["hashes"][0])
        return scores_from_media(body)

    def scan_url(self, url: str) -> list[Score]:
        """Scores for the media at ``url``, which C3P fetches itself (its domain must be registered with the
        account): for material the platform already serves publicly, so no bytes go from here."""
        return scores_from_media(self._send(url_request(url)), mode="url")

    def check(self) -> dict:
        """One PDQ lookup of the all-zero hash: proves the URL and the credentials; no media is sent."""
        sent = pdq_base64(CHECK_PDQ)
        scores_from_pdq(self._send(Outgoing(PDQ_PATH, json={"hashes": [sent]})), sent)
        return {"checked": True, "endpoint": PDQ_PATH}

    def _send(self, outgoing: Outgoing) -> Any:
        user, password = self.credentials.username, self.credentials.password
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        headers = {"Authorization": f"Basic {token}"}
        with client(TITLE, self.settings, self.settings.max_response_bytes, headers=headers,
                    secrets=(token, password, user)) as http:  # fmt: skip
            if outgoing.json is not None:
                return http.request_json("POST", outgoing.path, json=outgoing.json)
            return http.request_json("POST", outgoing.path, content=outgoing.content, headers=outgoing.headers)
