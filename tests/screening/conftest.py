"""A Google Content Safety stand-in on loopback and a service configured against it."""

from __future__ import annotations

import pytest

from safehold.config import Settings
from safehold.screening.services.google_standin import GoogleStandIn

KEY = "standin-api-key-0123"


@pytest.fixture
def settings(tmp_path, database_url):
    # Tiny back-offs: a retried job is due again at once when a test moves on.
    return Settings(
        home=tmp_path / "home", database_url=database_url, screening_backoff_seconds=0.001,
        screening_backoff_max_seconds=0.001,
    )  # fmt: skip


@pytest.fixture
def google():
    with GoogleStandIn(api_key=KEY) as standin:
        yield standin


@pytest.fixture
def configured(svc, google):
    """``google`` configured as the service ``gcs`` (a high rate limit and a short timeout)."""
    return svc.screening.create(
        "gcs", "google_csai", {"url": google.url, "timeout_seconds": 2, "requests_per_minute": 6000},
        {"api_key": KEY}, actor="admin",
    )  # fmt: skip
