"""API-key authentication: the key-lookup cache, the listener that empties it when a key changes, and the
`OrgId` dependency every endpoint takes.

A cached lookup is only as good as the news of a revocation. The schema's trigger (sql/schema/004_auth.sql)
NOTIFYs 'bookbench_auth' when an organization's key or id changes or an organization is deleted; one dedicated
connection per service process LISTENs and clears the cache. While that connection is not up (not yet, lost, or the
database lacks the trigger) the cache is not used at all, so a revoked key stops working as soon as the
notification arrives, or at once when there is no listener: never after a cache lifetime.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import Annotated

import asyncpg
from fastapi import Depends, Header, HTTPException, Request

from target_service import queries
from target_service.db import CONNECTION_LOST, acquired

log = logging.getLogger("target_service")

CHANNEL = "bookbench_auth"
APPLICATION_NAME = "bookbench-service-auth"
# A connection that dies without the peer saying so (a network partition, no FIN) delivers no notification and no
# error: a round trip this often proves it alive; a revocation is missed for at most this plus the check's timeout.
CHECK_EVERY_S = 5.0
CHECK_TIMEOUT_S = 2.0
RECONNECT_S = 1.0
NO_TRIGGER_RECHECK_S = 30.0
_MAX_ENTRIES = 10_000
_LISTENER_LOST: tuple[type[Exception], ...] = (*CONNECTION_LOST, asyncpg.InterfaceError, TimeoutError)
_HAS_TRIGGER = ("SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'organizations_auth_changed' "
                "AND tgrelid = to_regclass('organizations'))")


class KeyCache:
    """sha256(key) -> org id for at most `ttl_s`, used only while `live` (the listener is connected)."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self.live = False
        # bumped by every invalidation: a lookup that started before one must not store what it read
        self.generation = 0
        self._entries: dict[str, tuple[int, float]] = {}

    def get(self, key_hash: str) -> int | None:
        hit = self._entries.get(key_hash) if self.live else None
        if hit is None or hit[1] < time.monotonic():
            return None
        return hit[0]

    def put(self, key_hash: str, org_id: int, generation: int) -> None:
        if not self.live or generation != self.generation or self.ttl_s <= 0:
            return
        if len(self._entries) >= _MAX_ENTRIES:
            self._entries.clear()
        self._entries[key_hash] = (org_id, time.monotonic() + self.ttl_s)

    def invalidate(self) -> None:
        self._entries.clear()
        self.generation += 1

    def set_live(self, live: bool) -> None:
        # either way what is cached may predate a change nobody heard of
        self.invalidate()
        self.live = live

    @property
    def state(self) -> str:
        return "listening" if self.live else "off"


async def listen_for_key_changes(dsn: str, cache: KeyCache) -> None:
    """Run until cancelled: keep one LISTEN connection up, and the cache live exactly while it is."""
    warned_no_trigger = False
    while True:
        conn: asyncpg.Connection | None = None
        pause = RECONNECT_S
        try:
            conn = await asyncpg.connect(dsn, timeout=10, server_settings={"application_name": APPLICATION_NAME})
            if await conn.fetchval(_HAS_TRIGGER):
                await _listen(conn, cache)
            else:
                if not warned_no_trigger:
                    log.warning("the database has no organizations_auth_changed trigger (sql/schema/004_auth.sql): "
                                "API-key lookups are not cached")
                    warned_no_trigger = True
                pause = NO_TRIGGER_RECHECK_S
        except _LISTENER_LOST as exc:
            # said once per loss, not once per failed reconnect while the database restarts
            if cache.live:
                log.warning("API-key change listener lost (%s: %s); key lookups uncached until it is back",
                            type(exc).__name__, exc)
        except Exception:
            log.exception("API-key change listener failed; key lookups uncached until it is back")
        finally:
            cache.set_live(False)
            if conn is not None:
                conn.terminate()
        await asyncio.sleep(pause)


async def _listen(conn: asyncpg.Connection, cache: KeyCache) -> None:
    """Returns when the connection is gone (or raises when its liveness check fails)."""
    lost = asyncio.Event()
    conn.add_termination_listener(lambda _: lost.set())
    await conn.add_listener(CHANNEL, lambda *_: cache.invalidate())
    cache.set_live(True)  # empties the cache: whatever it held may predate a change this connection never heard
    while not lost.is_set():
        try:
            await asyncio.wait_for(lost.wait(), CHECK_EVERY_S)
        except TimeoutError:
            await conn.fetchval("SELECT 1", timeout=CHECK_TIMEOUT_S)
    if cache.live:
        log.warning("API-key change listener's connection closed; key lookups uncached until it is back")


_UNAUTHORIZED = HTTPException(401, detail="missing or invalid API key (Authorization: Bearer <key>)",
                              headers={"WWW-Authenticate": "Bearer"})


class AmbiguousCredentials(Exception):
    """More than one Authorization header: which one counts is a guess no server should make (a 400)."""


async def current_org(request: Request, authorization: Annotated[str | None, Header()] = None) -> int:
    if len(request.headers.getlist("authorization")) > 1:
        raise AmbiguousCredentials
    # the scheme is case-insensitive (RFC 7235: "bearer", "BEARER"); the key itself is not
    scheme, _, key = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise _UNAUTHORIZED
    key_hash = hashlib.sha256(key.strip().encode()).hexdigest()
    cache: KeyCache = request.app.state.key_cache
    generation = cache.generation
    org_id = cache.get(key_hash)
    if org_id is None:
        async with acquired(request.app.state.pool) as conn:
            org_id = await conn.fetchval(queries.ORG_BY_KEY_HASH, key_hash)
        if org_id is None:
            raise _UNAUTHORIZED
        cache.put(key_hash, org_id, generation)
    return int(org_id)


OrgId = Annotated[int, Depends(current_org)]
