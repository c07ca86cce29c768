"""A local stand-in for C3P's Arachnid Shield API (``v1/media/``, ``v1/url/``, ``v1/pdq/``), for tests and
rehearsals::

    standin = ArachnidStandIn(username="user", password="pass")
    url = standin.start()                              # http://127.0.0.1:<port>
    standin.add_media(image_bytes, "csam")             # these exact bytes are known material (an exact match)
    standin.add_pdq(pdq_hex, "harmful-abusive-material")   # this PDQ is known (a near match)
    standin.add_url("https://cdn.example/a.jpg", image_bytes)  # what C3P would fetch at that URL

Answers are deterministic, keyed on the bytes (SHA-256) or the PDQ: anything not added is ``no-known-match``. Like
the real service it wants HTTP Basic credentials on every call (401 with ``WWW-Authenticate: Basic`` and a
``detail`` otherwise), takes only ``image/*`` and ``video/*`` uploads (415), and answers errors as
``{"detail": …}``. Faults: HTTP statuses, 429 with ``Retry-After``, dropped connections (the JSON stand-in base),
stalls, bodies that are not JSON and oversized bodies (:class:`~._standin.ScreeningStandIn`). Only benign test
media is ever added: the stand-in classifies what it is told to.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from safehold.outbound.standin import Reply, Request
from safehold.screening.services._standin import ScreeningStandIn

#: Most hashes one PDQ call may carry (the stand-in's own bound; the real one is not published).
MAX_PDQ_HASHES = 1000


class ArachnidStandIn(ScreeningStandIn):
    label = "arachnid-standin"

    def __init__(self, *, username: str = "shield-user", password: str = "shield-pass"):
        super().__init__()
        self.username, self.password = username, password
        self._basic = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.media: dict[str, tuple[str, str]] = {}  # sha256 hex → (classification, match type)
        self.pdqs: dict[bytes, tuple[str, int]] = {}  # PDQ bytes → (classification, distance)
        self.urls: dict[str, bytes] = {}

    def settings(self) -> dict:
        """What ``safehold screening add --type arachnid_shield`` needs to use this stand-in."""
        return {"url": self.url}

    def credentials(self) -> dict:
        return {"username": self.username, "password": self.password}

    def add_media(self, data: bytes, classification: str = "csam", match_type: str = "exact") -> None:
        """These exact bytes are known material of ``classification``."""
        with self._lock:
            self.media[hashlib.sha256(data).hexdigest()] = (classification, match_type)

    def add_pdq(self, pdq_hex: str, classification: str = "csam", *, distance: int = 12) -> None:
        """Media with this PDQ hash (hex) is known material, matched visually at ``distance`` bits."""
        with self._lock:
            self.pdqs[bytes.fromhex(pdq_hex)] = (classification, distance)

    def add_url(self, url: str, data: bytes) -> None:
        """C3P can fetch ``url`` (its domain is registered) and finds ``data`` there."""
        with self._lock:
            self.urls[url] = data

    def route(self, request: Request) -> Reply:
        if request.headers.get("authorization") != self._basic:
            return Reply(401, {"detail": "Invalid username or password."}, {"WWW-Authenticate": "Basic"})
        if request.method != "POST":
            return Reply(405, {"detail": "Method not allowed."})
        path = request.path.rstrip("/")
        if path == "/v1/media":
            content_type = request.headers.get("content-type", "").split(";", 1)[0].strip()
            if not content_type.startswith(("image/", "video/")):
                return Reply(415, {"detail": f"Unsupported media type {content_type!r}."})
            if not request.body:
                return Reply(400, {"detail": "Empty media."})
            return Reply(200, self._scanned(request.body))
        if path == "/v1/url":
            body = request.json()
            url = body.get("url") if isinstance(body, dict) else None
            if not isinstance(url, str) or url not in self.urls:
                return Reply(422, {"detail": "The URL's domain is not registered for this account."})
            return Reply(200, self._scanned(self.urls[url]))
        if path == "/v1/pdq":
            return self._pdq(request.json())
        return Reply(404, {"detail": "Not found."})

    def _scanned(self, data: bytes) -> dict[str, Any]:
        sha256 = hashlib.sha256(data).hexdigest()
        classification, match_type = self.media.get(sha256, ("no-known-match", None))
        near = [] if match_type is None else [_near(classification, data)]
        return {
            "sha1_base32": base64.b32encode(hashlib.sha1(data).digest()).decode(),  # noqa: S324 - C3P's id
            "sha256_hex": sha256.upper(),
            "classification": classification,
            "match_type": match_type,
            "size_bytes": len(data),
            "is_match": match_type is not None,
            "near_match_details": near,
        }

    def _pdq(self, body: Any) -> Reply:
        hashes = body.get("hashes") if isinstance(body, dict) else None
        if not isinstance(hashes, list) or not 1 <= len(hashes) <= MAX_PDQ_HASHES:
            return Reply(422, {"detail": f"'hashes' must be a list of 1 to {MAX_PDQ_HASHES} PDQ hashes."})
        scanned = {}
        for value in hashes:
            raw = _decoded(value)
            if raw is None or len(raw) != 32:
                return Reply(422, {"detail": "Each PDQ hash is the base64 of 32 bytes."})
            known = self.pdqs.get(raw)
            if known is None:
                scanned[value] = {"classification": "no-known-match", "match_type": None, "near_match_details": None}
                continue
            classification, distance = known
            details = {**_near(classification, raw), "distance": distance}
            scanned[value] = {"classification": classification, "match_type": "near", "near_match_details": details}
        return Reply(200, {"scanned_hashes": scanned})


def _near(classification: str, seed: bytes) -> dict[str, Any]:
    """A deterministic matched item: hashes derived from ``seed`` (the stand-in holds no real media)."""
    digest = hashlib.sha256(b"known:" + seed).digest()
    return {
        "sha1_base32": base64.b32encode(digest[:20]).decode(),
        "sha256_hex": digest.hex().upper(),
        "classification": classification,
        "timestamp": 0,
    }


def _decoded(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
