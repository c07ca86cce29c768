"""Google's Content Safety API: an AI classifier that answers, for each image sent, a *review priority* — how
likely a person reviewing it will find child sexual abuse material — to order a human review queue. It never says
an image is CSAM; Google's terms require a manual review before any action (docs/classifiers.md).

Protocol (v1beta1, the one partners are given access to; API-key authentication, the key in Google's
``X-Goog-Api-Key`` header rather than the ``key`` query parameter both accept: a URL with the key in it would
show in HTTP client logs)::

    POST {url}/images:classify          X-Goog-Api-Key: API_KEY
    {"images": ["<base64 of the image bytes>", ...]}          (up to 32 per call; we send one)

    200 {"reviewPriorities": ["VERY_LOW" | "LOW" | "MEDIUM" | "HIGH" | "VERY_HIGH", ...],
         "modelVersion": "..."}                               (one priority per image, in order)

The priority becomes one score with the label ``csam`` (the case category of apparent CSAM not yet classified),
by :data:`PRIORITY_SCORES`; the default threshold (0.7) sends ``HIGH`` and ``VERY_HIGH`` to review, and an
operator who wants ``MEDIUM`` too sets the service's threshold to 0.5. The reviewer sees the priority itself and
the model version in the signal's detail.
"""

from __future__ import annotations

import base64
import io
from typing import Any, ClassVar

from pydantic import SecretStr, field_validator

from safehold.classifiers.base import Score
from safehold.outbound.http import JsonHttp
from safehold.screening.base import Credentials, Media, ScreeningService, Settings
from safehold.screening.http import ERRORS, SUBJECT, refusals, url_setting

#: The documented priorities, lowest first, and the score each becomes (the middle of five equal bands).
PRIORITY_SCORES: dict[str, float] = {"VERY_LOW": 0.1, "LOW": 0.3, "MEDIUM": 0.5, "HIGH": 0.7, "VERY_HIGH": 0.9}
#: Largest answer read (a priority list for one image is tiny).
MAX_BODY_BYTES = 64 << 10
#: Image types the API takes.
CONTENT_TYPES = frozenset(
    {"image/bmp", "image/gif", "image/x-icon", "image/vnd.microsoft.icon", "image/jpeg", "image/png",
     "image/x-portable-pixmap", "image/tiff", "image/webp"}
)  # fmt: skip


class GoogleSettings(Settings):
    url: str = "https://contentsafety.googleapis.com/v1beta1"

    _url = field_validator("url")(url_setting)


class GoogleCredentials(Credentials):
    #: The API key Google issued for the Content Safety API (sent in the ``X-Goog-Api-Key`` header).
    api_key: SecretStr

    @field_validator("api_key")
    @classmethod
    def _key(cls, value: SecretStr) -> SecretStr:
        if not 8 <= len(value.get_secret_value()) <= 256:
            raise ValueError("an API key is 8 to 256 characters")
        return value


class GoogleContentSafety(ScreeningService):
    type = "google_csai"
    description = "Google Content Safety API: a review priority (VERY_LOW … VERY_HIGH) for each image"
    labels = ("csam",)
    threshold = 0.7
    settings_model: ClassVar[type[Settings]] = GoogleSettings
    credentials_model: ClassVar[type[Credentials]] = GoogleCredentials

    def _http(self) -> JsonHttp:
        key = self.credentials.api_key.get_secret_value()
        return JsonHttp(
            self.settings.url, title="Google Content Safety API", errors=ERRORS, subject=SUBJECT,
            timeout=self.settings.timeout_seconds, max_body_bytes=MAX_BODY_BYTES,
            headers={"X-Goog-Api-Key": key}, classify=refusals("The Google Content Safety API", (key,)), secrets=(key,),
        )  # fmt: skip

    def classify(self, media: Media) -> list[Score]:
        content_type = (media.content_type or "").split(";", 1)[0].strip().lower()
        if content_type not in CONTENT_TYPES:
            raise ERRORS(
                "rejected", f"The Google Content Safety API takes images only, not {content_type or 'unknown'!r}.",
                retryable=False,
            )  # fmt: skip
        body = {"images": [base64.b64encode(media.data).decode("ascii")]}
        with self._http() as http:
            answer = http.request("POST", "./images:classify", json=body)
        priority, version = _priority(answer)
        detail = {"priority": priority, "service": "Google Content Safety API"}
        if version:
            detail["model_version"] = version
        return [Score("csam", PRIORITY_SCORES[priority], detail)]

    def check(self) -> dict:
        """Classifies a generated 8×8 grey PNG: proves the URL and the key with nothing of anyone's."""
        [score] = self.classify(Media(_grey_png(), "image/png"))
        return {"checked": True, "priority": score.detail["priority"]}


def _grey_png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8), (128, 128, 128)).save(out, format="PNG")
    return out.getvalue()


def _priority(answer: dict[str, Any]) -> tuple[str, str | None]:
    """The one image's priority and the model version, or ``screening.protocol``."""
    priorities = answer.get("reviewPriorities")
    if not isinstance(priorities, list) or len(priorities) != 1 or priorities[0] not in PRIORITY_SCORES:
        raise ERRORS(
            "protocol", "The Google Content Safety API answered without one known review priority for the image.",
            retryable=False,
        )  # fmt: skip
    version = answer.get("modelVersion", answer.get("model_version"))
    return priorities[0], version[:64] if isinstance(version, str) else None
