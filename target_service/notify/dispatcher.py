"""The notification dispatcher: its own process, any number of them side by side.

Each claims due outbox rows with FOR UPDATE SKIP LOCKED under a lease (so two dispatchers never take the same
row, and a dead one's rows come back), keeps up to `max_in_flight` deliveries going over HTTP with timeouts, and
settles each row as its answer arrives: sent; retried later with exponential backoff and full jitter (or after a
429's Retry-After); dead-lettered after `max_attempts`. Every attempt carries the row's dedup key as the provider's
idempotency key (notify.IDEMPOTENCY_HEADER): a row finished by another dispatcher after this one died between
the provider's answer and settling it is a redelivery the provider answers as the first time, not a second message.
It sleeps until a booking's NOTIFY (sent at commit) or its next row falls due, not on a polling timer.
Its sessions run READ COMMITTED whatever the database's or role's default (under SERIALIZABLE the claim fails on
every row another dispatcher settled meanwhile), and a serialization failure or deadlock (40001 / 40P01) is retried
with backoff, never the end of the dispatcher.

Run: `python -m target_service.notify` with BOOKBENCH_DATABASE_URL and the provider settings in the environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import signal
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import asyncpg
import uvloop

from target_service.db import CONNECTION_LOST, keep_session
from target_service.notify import breaker
from target_service.notify.providers import Calendar, Outcome, Sms
from target_service.notify.settings import NotifySettings

log = logging.getLogger("bookbench.dispatcher")
CHANNEL = "bookbench_outbox"
T = TypeVar("T")

# What another transaction's timing causes, and what the same statement, run again, gets past.
TRANSIENT: tuple[type[Exception], ...] = (asyncpg.SerializationError, asyncpg.DeadlockDetectedError)
TRANSIENT_ATTEMPTS = 5
# the claim and the settling are short statements: retried after tens of milliseconds, not the provider's backoff
_RETRY_BASE_S = 0.02
_RETRY_CAP_S = 1.0
# READ COMMITTED: the claim's FOR UPDATE SKIP LOCKED is a queue only at that level; the rest as the service's
SESSION = {"application_name": "bookbench-dispatcher", "default_transaction_isolation": "read committed",
           "jit": "off"}

# Claim = lease: due rows of one channel get their next_attempt_at pushed past the lease in one short transaction
# (SKIP LOCKED: dispatchers never wait for or take each other's rows). A dispatcher that dies mid-delivery loses
# nothing: its rows fall due again when the lease runs out. Each delivery then settles its own row.
_CLAIM = """
UPDATE notification_outbox SET next_attempt_at = clock_timestamp() + make_interval(secs => $3)
 WHERE id = ANY(ARRAY(
       SELECT id FROM notification_outbox
        WHERE status = 'pending' AND next_attempt_at <= clock_timestamp() AND channel = $2
          -- a cancellation never overtakes its booking's message on the same channel (a delete before the insert
          -- would find nothing, and the insert would then leave an event for a cancelled appointment). NOT IN over
          -- a non-null column: one hashed pass over the pending first messages, whatever the table's statistics
          AND (kind IN ('confirm', 'insert') OR appointment_id NOT IN (
               SELECT appointment_id FROM notification_outbox
                WHERE status = 'pending' AND channel = $2 AND kind IN ('confirm', 'insert')))
        ORDER BY next_attempt_at
        LIMIT $1
          FOR UPDATE SKIP LOCKED))
RETURNING id, channel, kind, dedup_key, payload, attempts
"""
_SENT = """
UPDATE notification_outbox SET status = 'sent', sent_at = clock_timestamp(), attempts = attempts + 1,
       conflict = $2, last_error = NULL
 WHERE id = $1 AND status = 'pending'
"""
_RETRY = """
UPDATE notification_outbox
   SET attempts = attempts + 1, last_error = $2,
       status = CASE WHEN attempts + 1 >= $4 THEN 'dead' ELSE 'pending' END,
       next_attempt_at = clock_timestamp() + make_interval(secs => $3)
 WHERE id = $1 AND status = 'pending'
"""
_NEXT_DUE = """
SELECT GREATEST(0, EXTRACT(epoch FROM min(next_attempt_at) - clock_timestamp()))::float8
  FROM notification_outbox WHERE status = 'pending'
"""


def backoff_s(attempts: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2^attempts)]; never below 50 ms so
    a failing provider is not hammered."""
    return max(0.05, rng.uniform(0, min(cap_s, base_s * 2 ** attempts)))


async def retry_transient(op: Callable[[], Awaitable[T]], what: str, rng: random.Random,
                          attempts: int = TRANSIENT_ATTEMPTS) -> T:
    """`op()` (one statement, so all or nothing), run again after a serialization failure or a deadlock."""
    for attempt in range(1, attempts + 1):
        try:
            return await op()
        except TRANSIENT as exc:
            if attempt == attempts:
                raise
            delay = backoff_s(attempt, _RETRY_BASE_S, _RETRY_CAP_S, rng)
            log.warning("%s: %s (SQLSTATE %s), attempt %d of %d; again in %.2f s", what, type(exc).__name__,
                        getattr(exc, "sqlstate", "?"), attempt, attempts, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


async def open_pool(s: NotifySettings) -> asyncpg.Pool:
    # reset: the service's, not asyncpg's default round trip of RESET ALL / UNLISTEN on every release (the pool's
    # connections keep no session state; LISTEN lives on its own connection)
    pool = await asyncpg.create_pool(s.database_url, min_size=2, max_size=s.db_connections, reset=keep_session,
                                     server_settings=SESSION)
    assert pool is not None
    isolation = await pool.fetchval("SHOW transaction_isolation")
    if isolation != "read committed":
        # a pooler in between dropped the setting: the claim will fail now and then, and be retried
        log.warning("the dispatcher's sessions run %s, not READ COMMITTED (a pooler dropping session settings?): "
                    "claims will hit serialization failures and be retried", isolation.upper())
    return pool


class Dispatcher:
    def __init__(self, s: NotifySettings) -> None:
        self.s = s
        self.sms = Sms(s)
        self.calendar = Calendar(s)
        self.rng = random.Random()
        self.wake = asyncio.Event()
        self.stopping = False
        self.in_flight: set[asyncio.Task[None]] = set()
        # a claimed row is ours for this long: two HTTP timeouts (a calendar insert makes two calls) and slack
        self.lease_s = 2 * s.http_timeout_s + 5

    def stop(self) -> None:
        """Finish the deliveries in hand (their rows are settled), then exit."""
        self.stopping = True
        self.wake.set()

    async def deliver(self, client: aiohttp.ClientSession, row: asyncpg.Record) -> Outcome:
        payload: dict[str, Any] = json.loads(row["payload"]) if isinstance(row["payload"], str) else row["payload"]
        if row["channel"] == "sms":
            return await self.sms.send(client, payload, row["dedup_key"])
        if row["kind"] == "insert":
            return await self.calendar.insert(client, payload, row["dedup_key"])
        return await self.calendar.delete(client, payload, row["dedup_key"])

    async def _one(self, pool: asyncpg.Pool, client: aiohttp.ClientSession, row: asyncpg.Record, probe: bool) -> None:
        """Deliver one row, settle it, and tell the provider's breaker how it went (each statement retried on its
        own: a retry of the whole would count an attempt or a failure twice)."""
        out = await self.deliver(client, row)
        async with pool.acquire() as conn:
            if out.ok:
                await retry_transient(lambda: conn.execute(_SENT, row["id"], out.conflict), "settle", self.rng)
            else:
                attempts = row["attempts"] + 1
                delay = (out.retry_after_s if out.retry_after_s is not None
                         else backoff_s(attempts, self.s.backoff_base_s, self.s.backoff_cap_s, self.rng))
                # a final answer (a 4xx other than 401/408/429) dead-letters at once
                limit = attempts if not out.retryable else self.s.max_attempts
                await retry_transient(lambda: conn.execute(_RETRY, row["id"], out.error, delay, limit), "settle",
                                      self.rng)
            provider = row["channel"]
            if out.ok or out.provider_fault:
                await retry_transient(lambda: breaker.record(conn, provider, out.ok, self.s.breaker_failures,
                                                             self.s.breaker_cooldown_s), "breaker", self.rng)
            elif probe:
                # the probe proved nothing (a 429): back to open-and-due, so the next gate probes again
                await retry_transient(lambda: conn.execute("UPDATE notification_breaker SET state = 'open' "
                                                           "WHERE provider = $1 AND state = 'half_open'", provider),
                                      "breaker", self.rng)
        if len(self.in_flight) <= self.s.max_in_flight // 2:
            self.wake.set()  # half the slots free: claim a batch (not one query round per finished delivery)

    async def claim(self, pool: asyncpg.Pool, clients: dict[str, aiohttp.ClientSession]) -> tuple[int, float | None]:
        """Start deliveries for due rows while slots are free; returns (rows claimed, how long until a provider
        whose breaker is open may be tried again, or None)."""
        claimed, blocked = 0, None
        for provider in ("sms", "calendar"):
            free = self.s.max_in_flight - len(self.in_flight)
            if free <= 0:
                break
            verdict, wait_s, rows = await self._claim_for(pool, provider, free)
            if verdict == "wait":
                blocked = wait_s if blocked is None else min(blocked, wait_s)
                continue
            for row in rows:
                task = asyncio.create_task(self._one(pool, clients[provider], row, verdict == "probe"))
                self.in_flight.add(task)
                task.add_done_callback(self._done)
            claimed += len(rows)
        return claimed, blocked

    async def _claim_for(self, pool: asyncpg.Pool, provider: str, free: int) -> tuple[str, float, list[asyncpg.Record]]:
        """One provider's gate and claim: (verdict, seconds to wait, rows claimed)."""
        async with pool.acquire() as conn:
            verdict, wait_s = await retry_transient(lambda: breaker.gate(conn, provider), "breaker", self.rng)
            if verdict == "wait":
                return verdict, wait_s, []
            limit = 1 if verdict == "probe" else min(free, self.s.batch_size)
            rows = await retry_transient(lambda: conn.fetch(_CLAIM, limit, provider, self.lease_s), "claim", self.rng)
            if not rows and verdict == "probe":
                await retry_transient(lambda: conn.execute("UPDATE notification_breaker SET state = 'open' WHERE "
                                                           "provider = $1 AND state = 'half_open'", provider),
                                      "breaker", self.rng)
            return verdict, wait_s, rows

    def _done(self, task: asyncio.Task[None]) -> None:
        self.in_flight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery failed: %r", task.exception())  # its row falls due again after the lease

    async def _sleep(self, pool: asyncpg.Pool, blocked_s: float | None) -> None:
        due = await pool.fetchval(_NEXT_DUE)
        timeout = self.s.idle_wakeup_s if due is None else max(float(due), 0.05)
        if blocked_s is not None and due is not None and due <= 0:
            timeout = blocked_s  # rows are due but their provider's breaker is open: wait for its cooldown
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), min(timeout, self.s.idle_wakeup_s))

    async def run(self) -> None:
        pool = await open_pool(self.s)
        listener = await asyncpg.connect(self.s.database_url, server_settings=SESSION)
        await listener.add_listener(CHANNEL, lambda *_: self.wake.set())
        # one session per provider, each with its own connection pool
        timeout = aiohttp.ClientTimeout(total=self.s.http_timeout_s)
        try:
            async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(
                        limit=self.s.connections_per_provider)) as sms_client, \
                    aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(
                        limit=self.s.connections_per_provider)) as calendar_client:
                clients = {"sms": sms_client, "calendar": calendar_client}
                failures = 0
                while not self.stopping:
                    self.wake.clear()  # before the claim: a NOTIFY or a finished delivery wakes the next wait
                    try:
                        claimed, blocked = await self.claim(pool, clients)
                        if claimed == 0 or len(self.in_flight) >= self.s.max_in_flight:
                            await self._sleep(pool, blocked)
                        failures = 0
                    except (*TRANSIENT, *CONNECTION_LOST) as exc:
                        # retries used up, or the database restarting: pause and carry on; rows already claimed
                        # fall due again when their lease runs out
                        failures += 1
                        delay = backoff_s(failures, self.s.backoff_base_s, self.s.backoff_cap_s, self.rng)
                        log.warning("claim failed (%s: %s); next try in %.2f s", type(exc).__name__, exc, delay)
                        await asyncio.sleep(delay)
                if self.in_flight:
                    await asyncio.wait(self.in_flight, timeout=self.lease_s)
        finally:
            await listener.close()
            await pool.close()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s dispatcher %(levelname)s %(message)s")
    dispatcher = Dispatcher(NotifySettings())  # type: ignore[call-arg]  # database_url comes from the environment

    async def runner() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, dispatcher.stop)
        await dispatcher.run()

    uvloop.run(runner())
