"""One settings object for the whole process, read from ``SAFEHOLD_*`` environment variables.

Every default is chosen so that a new user needs nothing: data lives in the home (``SAFEHOLD_HOME``, else the
checkout's ``var/``, else the per-user data folder; see ``safehold.home``) and the database is a SQLite file there.
Production sets ``SAFEHOLD_DATABASE_URL`` to PostgreSQL.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from safehold.home import resolve_home, sqlite_url


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SAFEHOLD_", env_file=None, extra="ignore")

    home: Path = Field(
        default_factory=lambda: resolve_home().path,
        description="Directory for the SQLite file, index snapshots, keys (default: see safehold.home).",
    )
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default: SQLite file in home.")

    # Hashing
    pdq_mode: str | None = Field(default=None, description="PDQ pipeline: 'fast' or 'reference' (None: default).")
    max_upload_bytes: int = Field(default=200 * 1024 * 1024, gt=0)
    max_image_pixels: int = Field(default=50_000_000, gt=0)

    # URL scanning (SSRF guard)
    url_fetch_allow: list[str] = Field(
        default_factory=list,
        description="Hosts or CIDR networks that URL scans may fetch even though they are private/loopback.",
    )
    url_fetch_timeout: float = Field(default=10.0, gt=0)
    url_fetch_max_redirects: int = Field(default=5, ge=0)

    # Bulk imports (see docs/security.md)
    import_batch_rows: int = Field(
        default=5_000,
        ge=1,
        le=1_000_000,
        description="Records of a bank import written per transaction: other writers wait for one batch at most.",
    )

    # Matching index
    index_sync_interval: float = Field(default=0.5, gt=0, description="Seconds between change-log polls.")

    # CLI scanning
    scan_workers: int = Field(default=0, ge=0, description="Hashing processes for `safehold scan` (0: cores).")

    # Encryption at rest (see store/sealing.py): the key-encryption key, base64 of 32 bytes. Default: a key file
    # created under home/keys on first start. Never logged.
    instance_key: str | None = Field(default=None, repr=False, description="Base64 KEK; default: key file.")

    # Console log-in
    session_hours: float = Field(default=12.0, gt=0, description="A console session ends this long after log-in.")
    session_idle_minutes: float = Field(default=60.0, gt=0, description="...or after this long without a request.")
    login_max_failures: int = Field(default=5, ge=1, description="Failed log-ins in a row before the lock-out.")
    login_lockout_minutes: float = Field(default=15.0, gt=0)
    public_url: str | None = Field(
        default=None,
        description="The URL people reach the console at (e.g. https://safehold.example.org): the console's "
        "Origin check compares scheme, host and port with it, and cookies are Secure when it is https.",
    )
    cookie_secure: bool | None = Field(
        default=None,
        description="Mark console cookies Secure. Default: when SAFEHOLD_PUBLIC_URL (or the request) is https.",
    )

    # Events
    event_key_days: float = Field(
        default=30.0, gt=0, description="Idempotency keys of POST /v1/events are remembered this long."
    )

    # Review
    claim_minutes: float = Field(default=30.0, gt=0, description="A claim on a case lapses after this long idle.")

    # Webhooks (actions to the platform)
    webhook_timeout: float = Field(default=10.0, gt=0)
    webhook_max_attempts: int = Field(default=15, ge=1, description="Attempts before a delivery is dead-lettered.")
    webhook_backoff_seconds: float = Field(default=2.0, gt=0, description="First retry delay; doubles each time.")
    webhook_backoff_max_seconds: float = Field(default=3600.0, gt=0)
    webhook_poll_interval: float = Field(default=1.0, gt=0)

    # Reporting to NCMEC's CyberTipline (see docs/reporting.md). The default is NCMEC's test environment: filing
    # for real needs the production URL set on purpose, with the credentials NCMEC issued for it.
    cybertip_url: str = Field(
        default="https://exttest.cybertip.org/ispws",
        description="CyberTipline API base URL: https://exttest.cybertip.org/ispws (test) or "
        "https://report.cybertip.org/ispws (production).",
    )
    cybertip_username: str | None = Field(default=None, description="ESP user name issued by NCMEC.")
    cybertip_password: str | None = Field(default=None, repr=False, description="Its password. Never logged.")
    cybertip_timeout: float = Field(default=60.0, gt=0, description="Seconds per CyberTipline request.")
    cybertip_max_attempts: int = Field(default=8, ge=1, description="Filing attempts before a report fails.")
    cybertip_backoff_seconds: float = Field(default=30.0, gt=0, description="First retry delay; doubles.")
    cybertip_backoff_max_seconds: float = Field(default=6 * 3600.0, gt=0)
    cybertip_schema: Path | None = Field(
        default=None, description="A newer cyber_tipline.xsd (from the API's /xsd) to validate against."
    )
    # Who reports: the reporter block of every report.
    reporter_first_name: str | None = None
    reporter_last_name: str | None = None
    reporter_email: str | None = None
    reporter_phone: str | None = None
    platform_name: str | None = Field(default=None, description="Your service's name (espService).")
    legal_url: str | None = Field(default=None, description="Where law enforcement sends legal process.")
    terms_of_service_url: str | None = None

    # Evidence (see docs/evidence.md): its own key-encryption key, separate from the instance key.
    evidence_key: str | None = Field(default=None, repr=False, description="Base64 KEK; default: key file.")
    evidence_kms: str | None = Field(
        default=None, description="'package.module:factory' returning a KeyProvider (a KMS plug-in)."
    )
    evidence_jurisdiction: str = Field(default="US", description="Jurisdiction of evidence with none given.")
    evidence_retention_days: int = Field(
        default=365, ge=1, description="Kept this long after its report is finished (REPORT Act: one year)."
    )
    evidence_retention_by_jurisdiction: dict[str, int] = Field(
        default_factory=dict, description='Per-jurisdiction days, JSON: {"EU": 365, "UK": 730}.'
    )

    # Text safety (see docs/text-safety.md)
    grooming_alert_threshold: float = Field(
        default=0.7, gt=0, le=1, description="A conversation whose risk reaches this opens a case."
    )
    grooming_model: Path | None = Field(
        default=None, description="A model file from `safehold text train` (default: the stage scorer alone)."
    )
    solicitation_case_threshold: float = Field(
        default=0.7, gt=0, le=1, description="A post whose solicitation score reaches this opens a case."
    )
    conversation_idle_days: float = Field(
        default=90.0,
        gt=0,
        description="Conversations without a case are forgotten this long after their last message.",
    )

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        from urllib.parse import urlsplit

        parts = urlsplit(v)
        try:
            parts.port  # noqa: B018 - validates the port
        except ValueError as exc:
            raise ValueError(f"SAFEHOLD_PUBLIC_URL has an invalid port: {v!r}") from exc
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"SAFEHOLD_PUBLIC_URL must be an absolute http:// or https:// URL, not {v!r}")
        return v

    @property
    def public_origin(self) -> tuple[str, str, int] | None:
        """``(scheme, host, port)`` of ``public_url``, or None."""
        if not self.public_url:
            return None
        from urllib.parse import urlsplit

        parts = urlsplit(self.public_url)
        return parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, v: Path) -> Path:
        return v.expanduser().resolve()

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return sqlite_url(self.home)

    @property
    def index_dir(self) -> Path:
        return self.home / "index"

    @property
    def key_file(self) -> Path:
        return self.home / "keys" / "instance.key"

    @property
    def vault_dir(self) -> Path:
        return self.home / "vault"

    @property
    def evidence_dir(self) -> Path:
        return self.home / "evidence"

    @property
    def evidence_key_file(self) -> Path:
        return self.home / "keys" / "evidence.key"

    @property
    def exports_dir(self) -> Path:
        return self.home / "exports"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
