"""Typed settings read from ``KEFU_*`` environment variables.

Built once by the app factory or the CLI and passed down; nothing reads the environment at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "dev-insecure-secret-change-me"


class Settings(BaseSettings):
    """Every knob of a Kefu node; see the configuration table in README.md."""

    model_config = SettingsConfigDict(env_prefix="KEFU_", env_file=None, extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite+aiosqlite:///./var/kefu.db"
    redis_url: str | None = None
    secret_key: str = DEV_SECRET
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str = "http://127.0.0.1:8000"  # printed links only; unset, the CLI prints where it listens
    # Load balancers whose X-Forwarded-For is believed (client addresses drive login rate limits and audit).
    trusted_proxies: str = "127.0.0.1"
    default_locale: Literal["zh", "en"] = "en"
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    session_ttl_seconds: int = Field(default=12 * 3600, ge=60)
    visitor_token_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=60)
    identity_token_max_age_seconds: int = Field(default=600, ge=10)
    login_max_failures: int = Field(default=5, ge=1)
    login_window_seconds: int = Field(default=900, ge=1)
    idempotency_ttl_seconds: int = 24 * 3600
    # A claimed key whose request never finished (its node died mid-request) is free again after this.
    idempotency_pending_seconds: int = Field(default=300, ge=1)
    outbox_sweep_seconds: float = 2.0
    outbox_stale_seconds: float = 5.0
    # Published events older than this are deleted; a client resuming from before that is told to resync.
    outbox_retention_hours: float = Field(default=72.0, gt=0)
    group_commit_max_batch: int = Field(default=256, ge=1)
    # Uploaded files (attachments) live under this folder; in scale-out it must be a shared volume.
    data_dir: Path = Path("./var")
    attachment_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    attachment_url_ttl_seconds: int = Field(default=900, ge=10)
    # Upload budgets per time window (counted in the database, so every node enforces them): per widget
    # visitor and per inbox (all its visitors together); and each tenant's total stored bytes (0: no quota).
    attachment_window_seconds: int = Field(default=3600, ge=1)
    attachment_visitor_max_uploads: int = Field(default=30, ge=1)
    attachment_visitor_max_bytes: int = Field(default=100 * 1024 * 1024, ge=1024)
    attachment_inbox_max_uploads: int = Field(default=1000, ge=1)
    attachment_inbox_max_bytes: int = Field(default=2 * 1024 * 1024 * 1024, ge=1024)
    attachment_tenant_quota_bytes: int = Field(default=20 * 1024 * 1024 * 1024, ge=0)
    # Uploads never sent in a message (visitors' and agents') are deleted after this long.
    attachment_unsent_retention_seconds: int = Field(default=24 * 3600, ge=60)
    node_id: str | None = None
    log_level: str = "INFO"
    log_json: bool = True
    # Test-only fault injection: exit the process right after a commit, before publishing its events.
    fault_crash_after_commit: bool = False

    @model_validator(mode="after")
    def _refuse_default_secret(self) -> Settings:
        if self.environment == "production" and (self.secret_key == DEV_SECRET or len(self.secret_key) < 32):
            raise ValueError("KEFU_SECRET_KEY must be set to a random value of at least 32 characters in production")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def sqlite_path(self) -> Path | None:
        """Return the SQLite file path, or None for other databases or in-memory SQLite."""
        if not self.is_sqlite:
            return None
        tail = self.database_url.split("///", 1)[-1]
        return None if tail in ("", ":memory:") else Path(tail)
