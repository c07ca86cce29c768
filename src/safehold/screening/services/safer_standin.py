"""A local stand-in for Thorn's Safer Predict image classifier, speaking the protocol
:mod:`safehold.screening.services.safer` assumes (its docstring says which parts are assumptions)::

    standin = SaferStandIn(api_key="key")
    url = standin.start()                                    # http://127.0.0.1:<port>
    standin.predict(image_bytes, csam=0.97, pornography=0.02)  # what it answers for these exact bytes

Answers are deterministic, keyed on the image's SHA-256: an image not given a prediction scores ``other`` 0.98.
It wants ``Authorization: Bearer <key>`` (401 otherwise), takes only ``image/*`` bodies (415) and answers errors
as ``{"message": …}``. Faults: HTTP statuses, 429 with ``Retry-After``, dropped connections, stalls, bodies that
are not JSON and oversized bodies (:class:`~._standin.ScreeningStandIn`).
"""

from __future__ import annotations

import hashlib

from safehold.outbound.standin import Reply, Request
from safehold.screening.services._standin import ScreeningStandIn

PATH = "/v1/classify/image"
#: What an image nobody gave a prediction scores.
BENIGN = {"csam": 0.01, "pornography": 0.01, "other": 0.98}
MODEL_VERSION = "standin-1"


class SaferStandIn(ScreeningStandIn):
    label = "safer-standin"

    def __init__(self, *, api_key: str = "safer-key", path: str = PATH):
        super().__init__()
        self.api_key = api_key
        self._bearer = f"Bearer {api_key}"
        self.path = "/" + path.strip("/")
        self.predictions: dict[str, dict[str, float]] = {}
        self._served = 0

    def settings(self) -> dict:
        """What ``safehold screening add --type safer_predict`` needs to use this stand-in."""
        return {"url": self.url, "classify_path": self.path.strip("/")}

    def credentials(self) -> dict:
        return {"api_key": self.api_key}

    def predict(self, data: bytes, *, csam: float, pornography: float = 0.0, **extra: float) -> None:
        """These exact bytes score ``csam`` and ``pornography``; ``other`` is the rest (extra classes as given)."""
        other = max(0.0, round(1.0 - csam - pornography, 6))
        with self._lock:
            self.predictions[hashlib.sha256(data).hexdigest()] = {
                "csam": csam, "pornography": pornography, "other": other, **extra,
            }  # fmt: skip

    def route(self, request: Request) -> Reply:
        if request.headers.get("authorization") != self._bearer:
            return Reply(401, {"message": "Invalid API key."})
        if request.method != "POST" or request.path.rstrip("/") != self.path:
            return Reply(404, {"message": "Not found."})
        content_type = request.headers.get("content-type", "").split(";", 1)[0].strip()
        if not content_type.startswith("image/"):
            return Reply(415, {"message": f"Unsupported media type {content_type!r}."})
        if not request.body:
            return Reply(400, {"message": "Empty image."})
        self._served += 1
        prediction = self.predictions.get(hashlib.sha256(request.body).hexdigest(), BENIGN)
        return Reply(
            200,
            {"predictions": prediction, "model_version": MODEL_VERSION, "request_id": f"standin-{self._served}"},
        )
