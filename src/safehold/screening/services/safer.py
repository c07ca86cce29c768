"""Thorn's Safer Predict: a classifier of new material, answering for an image a probability per class.

Thorn's own API reference is given to customers under contract and is not public. What is public (Thorn's
product pages, and Hive's documentation of the CSAM classifier it built and serves with Thorn): the image
classifier scores three classes — ``csam`` (child sexual abuse material), ``pornography`` (pornographic media not
involving children) and ``other`` (neither) — each a confidence in [0, 1], the three summing to 1; the service is
reached over HTTPS with an API key; the media is deleted once its embedding is computed.

Assumed here, because it is not public (each assumption is a constant or a setting of this module, so a contract's
real values change one line, not the code):

- the request is ``POST {url}/{classify_path}`` (default ``v1/classify/image``) with the image's bytes as the body
  and its MIME type as ``Content-Type``;
- the key goes in ``Authorization: Bearer <api_key>``;
- the answer is a JSON object ``{"predictions": {"csam": p, "pornography": p, "other": p}}`` with optional
  ``"model_version"`` and ``"request_id"``; a class this version does not know is kept in the detail, not scored;
- errors are JSON (``{"message"|"error"|"detail": …}``) with the usual HTTP statuses; 429 carries ``Retry-After``.

What leaves the building: the image itself (Safer Predict classifies pixels; there is no hash-only mode).

Label mapping — the one place it is decided (:data:`CLASSES`):

==================  ============  ======================================================
Safer class         Label         Note
==================  ============  ======================================================
``csam``            ``csam``      the probability as the score
``pornography``     ``explicit``  adult explicit imagery: by policy, a case when an age
                                  signal says a minor is involved (docs/classifiers.md)
``other``           (none)        the benign class: kept in the detail, never a hit
==================  ============  ======================================================
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from pydantic import Field, field_validator

from safehold.classifiers.base import Score
from safehold.screening.base import Credentials, Media, ScreeningError, ScreeningService, Settings
from safehold.screening.http import url_setting
from safehold.screening.services._answers import MAX_FIELD_CHARS, client, probability, protocol, text_field

TITLE = "Safer Predict"
#: Safer's class → Safehold label; ``None``: a class that is never a hit (kept in the detail only).
CLASSES: dict[str, str | None] = {"csam": "csam", "pornography": "explicit", "other": None}
#: Classes every answer must score.
REQUIRED_CLASSES = ("csam",)
#: Most extra (unknown) classes kept in a detail.
MAX_EXTRA_CLASSES = 10
#: Media types the image classifier takes.
ACCEPTED_TYPES = ("image/",)
CHECK_HEADERS = {"Content-Type": "image/png"}


class SaferSettings(Settings):
    url: str = Field(..., max_length=500, description="the Safer API base URL from Thorn's onboarding")
    #: The classification endpoint under the base URL (an assumption: see the module's docstring).
    classify_path: str = Field("v1/classify/image", min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_./-]+$")
    #: Largest answer read (a prediction is a few hundred bytes).
    max_response_bytes: int = Field(1 << 20, ge=1024, le=16 << 20)

    _safe_url = field_validator("url")(url_setting)

    @field_validator("classify_path")
    @classmethod
    def _under_base(cls, path: str) -> str:
        """A path under the base URL: no ``..`` segment could lead the key elsewhere on the host."""
        if ".." in path.split("/"):
            raise ValueError("the classify path may not contain a '..' segment")
        return path.strip("/")


class SaferCredentials(Credentials):
    api_key: str = Field(min_length=1, max_length=1000, repr=False)


def content_type_for(media: Media) -> str:
    """The ``Content-Type`` an image is sent with; anything but an image is not sent."""
    content_type = (media.content_type or "").split(";", 1)[0].strip().lower()
    if not content_type.startswith(ACCEPTED_TYPES):
        raise ScreeningError(
            "screening.not_supported",
            f"Safer Predict classifies images; {content_type or 'media of no type'} was not sent.",
            retryable=False,
        )
    return content_type


def check_image() -> bytes:
    """The image :meth:`SaferPredict.check` sends: 8×8 pixels of flat grey, made here."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8), (128, 128, 128)).save(out, format="PNG")
    return out.getvalue()


def auth_headers(api_key: str) -> dict[str, str]:
    """The headers carrying the key (an assumption: see the module's docstring)."""
    return {"Authorization": f"Bearer {api_key}"}


def scores_from_answer(body: Any) -> list[Score]:
    """One score per class that maps to a label; the whole prediction (every class) in each score's detail."""
    predictions = body.get("predictions") if isinstance(body, Mapping) else None
    if not isinstance(predictions, Mapping):
        raise protocol(TITLE, "an answer without its 'predictions' object")
    known: dict[str, float] = {}
    extra: dict[str, float] = {}
    for name, value in predictions.items():
        if not isinstance(name, str) or len(name) > MAX_FIELD_CHARS:
            raise protocol(TITLE, "a class name that is not a short string")
        if name in CLASSES:
            known[name] = probability(value, name, TITLE)
        elif len(extra) < MAX_EXTRA_CLASSES:
            extra[name] = probability(value, name, TITLE)
    missing = [c for c in REQUIRED_CLASSES if c not in known]
    if missing:
        raise protocol(TITLE, f"a prediction without a score for {', '.join(missing)}")
    detail: dict[str, Any] = {"service": SaferPredict.type, "predictions": {**known, **extra}}
    for key in ("model_version", "request_id"):
        if (value := text_field(body, key, TITLE)) is not None:
            detail[key] = value
    return [
        Score(label, known[name], {**detail, "class": name})
        for name, label in CLASSES.items()
        if label is not None and name in known
    ]


class SaferPredict(ScreeningService):
    """Safer Predict's image classifier: CSAM and adult explicit probabilities."""

    type = "safer_predict"
    description = "Thorn's Safer Predict: CSAM and explicit-imagery probabilities for images"
    labels = ("csam", "explicit")
    threshold = 0.5
    settings_model = SaferSettings
    credentials_model = SaferCredentials

    settings: SaferSettings
    credentials: SaferCredentials

    def classify(self, media: Media) -> list[Score]:
        headers = {"Content-Type": content_type_for(media)}
        return scores_from_answer(self._send(self.settings.classify_path, content=media.data, headers=headers))

    def check(self) -> dict:
        """Classifies a generated 8×8 grey PNG: proves the URL, the path and the key with nothing of anyone's."""
        scores_from_answer(self._send(self.settings.classify_path, content=check_image(), headers=CHECK_HEADERS))
        return {"checked": True, "endpoint": self.settings.classify_path}

    def _send(self, path: str, *, content: bytes, headers: dict[str, str]) -> Any:
        key = self.credentials.api_key
        with client(TITLE, self.settings, self.settings.max_response_bytes, headers=auth_headers(key),
                    secrets=(key,)) as http:  # fmt: skip
            return http.request_json("POST", path, content=content, headers=headers)
