"""Service settings from the environment (BOOKBENCH_*), validated at start so a bad value fails fast."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BOOKBENCH_", extra="ignore")

    database_url: str = Field(description="PostgreSQL DSN of the booking database")
    pool_min_size: int = Field(default=4, ge=0, le=200)
    pool_max_size: int = Field(default=20, ge=1, le=200)
    # The seed's protection against hanging requests under load.
    request_timeout_s: float = Field(default=5.0, gt=0, le=120)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # A request's head (request line and headers) must arrive within this long of the connection opening or of
    # its first byte, or the connection gets a 408 and is closed (target_service.protocol).
    header_timeout_s: float = Field(default=10.0, gt=0, le=600)
    # How long a key lookup is cached. Revocation does not wait for it: the cache is emptied when a key changes
    # (LISTEN on 'bookbench_auth') and not used while that listener is down. 0 turns caching off.
    auth_cache_ttl_s: float = Field(default=60.0, ge=0)
    # Calibration only, off by default: CPU work added to every API request, so that a benchmark can check that
    # `bookbench compare` finds a known slowdown on the real stack. Never set it on a deployment.
    calibration_delay_ms: float = Field(default=0.0, ge=0, le=1000)
    # How many of the most recent counted requests GET /stats/timing can summarise (32 bytes each). 0 switches the
    # per-request timing off: only for measuring what it costs (benchmarks/test_service_timing.py).
    timing_ring_size: int = Field(default=200_000, ge=0, le=10_000_000)
