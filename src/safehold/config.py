"""One settings object for the whole process, read from ``SAFEHOLD_*`` environment variables.

Every default is chosen so that a new user needs nothing: data lives under ``./var`` and the database is a SQLite
file there. Production sets ``SAFEHOLD_DATABASE_URL`` to PostgreSQL.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SAFEHOLD_", env_file=None, extra="ignore")

    home: Path = Field(default=Path("var"), description="Directory for the SQLite file, index snapshots, keys.")
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

    # Matching index
    index_sync_interval: float = Field(default=0.5, gt=0, description="Seconds between change-log polls.")

    # CLI scanning
    scan_workers: int = Field(default=0, ge=0, description="Hashing processes for `safehold scan` (0: cores).")

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, v: Path) -> Path:
        return v.expanduser().resolve()

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'safehold.db'}"

    @property
    def index_dir(self) -> Path:
        return self.home / "index"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
