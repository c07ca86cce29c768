"""A local stand-in for Google's Content Safety API (:mod:`.google`): ``POST /v1beta1/images:classify`` on
127.0.0.1, for tests, benchmarks and operators' rehearsals (``safehold screening stand-in google_csai``).

It checks the API key (the ``X-Goog-Api-Key`` header or the ``key`` query parameter), decodes each base64 image
and answers a review priority per image. The priority is deterministic: an image registered with
:meth:`GoogleStandIn.answer_for` gets its own; any other gets the priority the SHA-256 of its bytes picks (so the
same image always gets the same answer). Faults come from :class:`~safehold.outbound.standin.JsonStandIn`:
``fail(503)``, ``fail(429, retry_after=…)``, ``fail(200, body=b"not json")``, ``slow(seconds)``, ``drop()``,
``rate_limit(n, per)``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from safehold.outbound.standin import JsonStandIn, Reply, Request
from safehold.screening.services.google import PRIORITY_SCORES

PRIORITIES = tuple(PRIORITY_SCORES)
MODEL_VERSION = "standin-1"
#: The API's documented limit of images per call.
MAX_IMAGES = 32


class GoogleStandIn(JsonStandIn):
    label = "google-csai-standin"
    prefix = "/v1beta1"

    def __init__(self, api_key: str = "standin-api-key") -> None:
        super().__init__()
        self.api_key = api_key
        self._answers: dict[str, str] = {}
        #: How many images it classified (what a test counts to see a job was sent once).
        self.classified = 0

    def settings(self) -> dict:
        """What ``safehold screening add --type google_csai`` needs to use this stand-in."""
        return {"url": self.url}

    def credentials(self) -> dict:
        return {"api_key": self.api_key}

    def answer_for(self, image: bytes, priority: str) -> None:
        """Answer ``priority`` for ``image`` from now on."""
        if priority not in PRIORITY_SCORES:
            raise ValueError(f"priority is one of {', '.join(PRIORITIES)}")
        with self._lock:
            self._answers[hashlib.sha256(image).hexdigest()] = priority

    def priority(self, image: bytes) -> str:
        digest = hashlib.sha256(image).hexdigest()
        return self._answers.get(digest) or PRIORITIES[int(digest[:8], 16) % len(PRIORITIES)]

    def route(self, request: Request) -> Reply:
        if (request.method, request.path) != ("POST", f"{self.prefix}/images:classify"):
            return _error(404, "NOT_FOUND", "no such method")
        if (request.headers.get("x-goog-api-key") or request.query.get("key")) != self.api_key:
            return _error(403, "PERMISSION_DENIED", "API key not valid")
        body = request.json()
        images = body.get("images") if isinstance(body, dict) else None
        if not isinstance(images, list) or not 1 <= len(images) <= MAX_IMAGES:
            return _error(400, "INVALID_ARGUMENT", f"images is a list of 1 to {MAX_IMAGES} base64 strings")
        try:
            decoded = [base64.b64decode(image, validate=True) for image in images]
        except (binascii.Error, TypeError, ValueError):
            return _error(400, "INVALID_ARGUMENT", "an image is not valid base64")
        self.classified += len(decoded)
        return Reply(200, {"reviewPriorities": [self.priority(d) for d in decoded], "modelVersion": MODEL_VERSION})


def _error(code: int, status: str, message: str) -> Reply:
    """Google's error envelope."""
    return Reply(code, {"error": {"code": code, "message": message, "status": status}})
