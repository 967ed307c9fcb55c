"""The asyncpg pool, API-key authentication and the per-request connection dependency."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from typing import Annotated

import asyncpg
from fastapi import Depends, Header, HTTPException, Request

from target_service import queries


async def open_pool(dsn: str, min_size: int, max_size: int) -> asyncpg.Pool:
    # No command_timeout: the request deadline (GuardMiddleware) cancels the task, and asyncpg then cancels the
    # query on the server; a second, shorter timer here would turn deadlines into confusing errors.
    # jit off: on these sub-millisecond queries JIT compilation only ever adds latency.
    # READ COMMITTED on every connection whatever the database's or role's default: the booking function refuses
    # to run under anything else (a REPEATABLE READ snapshot predates its lock), so a database default of
    # REPEATABLE READ would otherwise fail every booking.
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, reset=keep_session,
        server_settings={"jit": "off", "application_name": "bookbench-service",
                         "default_transaction_isolation": "read committed"},
    )
    assert pool is not None
    # a pooler in between (PgBouncer in transaction mode) may drop that setting: refuse to start, naming it
    isolation = await pool.fetchval("SHOW transaction_isolation")
    if isolation != "read committed":
        await pool.close()
        raise RuntimeError(f"the database runs this service's transactions under {isolation.upper()}, and "
                           "book_appointment_atomic needs READ COMMITTED: set default_transaction_isolation to "
                           "'read committed' for the service's database or role (ALTER DATABASE ... SET ...)")
    return pool


async def keep_session(conn: asyncpg.Connection) -> None:
    """Replaces asyncpg's default reset on release (RESET ALL, UNLISTEN *, advisory unlock), which costs one more
    round trip per request. The service leaves no session state behind (its advisory locks are transaction-scoped;
    it never SETs, LISTENs or opens cursors), so only a transaction left open by a cancelled request needs undoing."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


class KeyCache:
    """sha256(key) -> org id, kept for a short TTL so that auth is not one more query per request."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[int, float]] = {}

    def get(self, key_hash: str) -> int | None:
        hit = self._entries.get(key_hash)
        if hit is None or hit[1] < time.monotonic():
            return None
        return hit[0]

    def put(self, key_hash: str, org_id: int) -> None:
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[key_hash] = (org_id, time.monotonic() + self.ttl_s)


async def connection(request: Request) -> AsyncIterator[asyncpg.Connection]:
    pool: asyncpg.Pool = request.app.state.pool
    async with pool.acquire() as conn:
        # the pool hands out a proxy that behaves as a Connection
        yield conn  # type: ignore[misc]


Conn = Annotated[asyncpg.Connection, Depends(connection)]


_UNAUTHORIZED = HTTPException(401, detail="missing or invalid API key (Authorization: Bearer <key>)",
                              headers={"WWW-Authenticate": "Bearer"})


async def current_org(request: Request, authorization: Annotated[str | None, Header()] = None) -> int:
    # the scheme is case-insensitive (RFC 7235: "bearer", "BEARER"); the key itself is not
    scheme, _, key = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise _UNAUTHORIZED
    key_hash = hashlib.sha256(key.strip().encode()).hexdigest()
    cache: KeyCache = request.app.state.key_cache
    org_id = cache.get(key_hash)
    if org_id is None:
        pool: asyncpg.Pool = request.app.state.pool
        org_id = await pool.fetchval(queries.ORG_BY_KEY_HASH, key_hash)
        if org_id is None:
            raise _UNAUTHORIZED
        cache.put(key_hash, org_id)
    return int(org_id)


OrgId = Annotated[int, Depends(current_org)]
