"""The interface of an external classification service: one small class per service (Google's Content Safety API,
Thorn's Safer Predict, C3P's Arachnid Shield, or a plug-in).

A service is a client and nothing else, like an exchange (:mod:`safehold.sharing.base`): it knows no database, no
queue and no case. :mod:`safehold.screening.service` stores its settings and sealed credentials, queues the
images to send off the hash-matching path, calls :meth:`ScreeningService.classify` with retries, back-off and the
service's rate limit, and hands what it answers to the pipeline as ``classifier`` signals (human review only).

Errors are :class:`ScreeningError` with a stable ``screening.*`` code and ``retryable`` saying whether the job
should simply be tried again later (network, 5xx, rate limit: ``retry_after`` seconds when the service said) or
whether an operator must act (bad credentials, a protocol violation): then the job fails and the service's status
shows why.

A plug-in package declares its class under the entry-point group ``safehold.screening``::

    [project.entry-points."safehold.screening"]
    acme = "acme_screening:AcmeService"      # a safehold.screening.base.ScreeningService subclass
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from safehold.classifiers.base import Score
from safehold.outbound.errors import OutboundError


class Settings(BaseModel):
    """A service's own settings (stored in clear, shown to admins). Subclass per service; unknown keys refused."""

    model_config = ConfigDict(extra="forbid")

    #: The service's base URL (``https://``, or ``http://`` to this machine for a stand-in).
    url: str
    #: Seconds one call may take, connection included (at most a minute: well inside a job's lease).
    timeout_seconds: float = Field(10.0, gt=0, le=60)
    #: Most calls per minute this instance makes to the service (its contract's rate limit).
    requests_per_minute: int = Field(60, ge=1, le=100_000)


class Credentials(BaseModel):
    """A service's secrets (sealed at rest, bound to the service's name, never shown or logged)."""

    model_config = ConfigDict(extra="forbid")


class ScreeningError(OutboundError):
    """A service call that failed; ``retryable`` errors are tried again after ``retry_after`` (or back-off)."""


@dataclass(frozen=True)
class Media:
    """What is sent: the file as uploaded, its type, and the hashes Safehold already computed (a service that
    takes a hash instead of the file, such as Arachnid Shield's PDQ endpoint, uses ``pdq``)."""

    data: bytes
    content_type: str
    pdq: str | None = None
    md5: str | None = None


class ScreeningService(ABC):
    """One external service. Built per call batch with its settings and credentials; thread-safe to call."""

    #: Lower-case ``[a-z][a-z0-9_]*``: the type an admin names when configuring one (``google_csai``, …).
    type: ClassVar[str]
    description: ClassVar[str] = ""
    #: Every label its scores may carry (a case category: ``csam`` or a slug).
    labels: ClassVar[tuple[str, ...]]
    #: A score at or above this is a hit (a case for review); operators can change it per configured service.
    threshold: ClassVar[float] = 0.5
    settings_model: ClassVar[type[Settings]] = Settings
    credentials_model: ClassVar[type[Credentials]] = Credentials

    def __init__(self, settings: Settings, credentials: Credentials):
        self.settings = settings
        self.credentials = credentials

    @abstractmethod
    def classify(self, media: Media) -> list[Score]:
        """Scores for ``media`` (labels from :attr:`labels`, in [0, 1], ``detail`` = what the service said that a
        reviewer should see); ``ScreeningError`` on failure. Never raises anything else for a bad answer."""

    def check(self) -> dict:
        """A cheap call proving the URL and credentials work (``safehold screening test``); by default
        nothing is sent and ``{"checked": False}`` is answered."""
        return {"checked": False}
