"""Dispatcher settings from the environment (BOOKBENCH_*). The provider URLs default to the real services, so
pointing at Twilio and Google Calendar is a matter of credentials; bookbench sets them to its fake providers."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class NotifySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BOOKBENCH_", extra="ignore")

    database_url: str = Field(description="PostgreSQL DSN of the booking database")
    # Twilio Messages API
    sms_base_url: str = "https://api.twilio.com"
    twilio_account_sid: str = "AC-bookbench"
    twilio_auth_token: str = Field(default="bookbench-sms-token", repr=False)
    twilio_from: str = "+15550100000"
    # Google Calendar v3 and its OAuth2 token endpoint (refresh-token grant)
    calendar_base_url: str = "https://www.googleapis.com"
    google_token_url: str = "https://oauth2.googleapis.com/token"
    google_client_id: str = "bookbench-client"
    google_client_secret: str = Field(default="bookbench-client-secret", repr=False)
    google_refresh_token: str = Field(default="bookbench-refresh-token", repr=False)
    # delivery
    http_timeout_s: float = Field(default=5.0, gt=0, le=120)
    batch_size: int = Field(default=32, ge=1, le=1000)  # rows claimed per query
    max_in_flight: int = Field(default=128, ge=1, le=4096)  # deliveries under way at once, per dispatcher
    db_connections: int = Field(default=8, ge=2, le=100)
    connections_per_provider: int = Field(default=128, ge=1, le=1024)
    max_attempts: int = Field(default=8, ge=1, le=100)
    backoff_base_s: float = Field(default=0.5, gt=0, le=60)
    backoff_cap_s: float = Field(default=30.0, gt=0, le=3600)
    # circuit breaker, per provider, state in the database
    breaker_failures: int = Field(default=5, ge=1, le=1000)
    breaker_cooldown_s: float = Field(default=2.0, gt=0, le=3600)
    # a safety net only: dispatchers are woken by NOTIFY and by their own next due time
    idle_wakeup_s: float = Field(default=5.0, gt=0, le=3600)
