"""The asyncpg pool: opening it, lending a connection, keeping its session clean (the routes' per-request
dependency is dependency.py; authentication is in auth.py). No FastAPI here: the dispatchers use it too."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from target_service.timing import CURRENT

log = logging.getLogger("target_service")

# What the server answers when it cannot serve a connection right now: SQLSTATE class 08 (connection exception,
# ConnectionDoesNotExistError among them), shutting down, crashed, still starting, idle session ended, no free slot.
SERVER_UNAVAILABLE: tuple[type[Exception], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    asyncpg.IdleSessionTimeoutError,
    asyncpg.TooManyConnectionsError,
)
# ... and the network failing under a database call: refused, reset, unreachable, timed out are all OSErrors. Only
# counted so within acquired(), whose work (an endpoint's, for the connection dependency) does no other I/O:
# elsewhere an OSError is a bug of the service's own.
CONNECTION_LOST: tuple[type[Exception], ...] = (*SERVER_UNAVAILABLE, OSError)
# The driver refusing to use a connection (closed, busy, its protocol out of step). When the server dropped the
# connection these are the symptom: a query that starts between the server's goodbye message and the end of the
# stream fails with "cannot switch to state 12; another operation (2) is in progress" (InternalClientError) while
# the connection does not yet read as closed. On a live connection they are a bug of the caller.
_DRIVER_REFUSAL: tuple[type[Exception], ...] = (asyncpg.InterfaceError, asyncpg.InternalClientError)
# how long a connection that failed with a driver refusal gets to read as closed: the server's goodbye and the end
# of the stream arrive together, so this only covers an event loop busy with other requests
_CLOSE_GRACE_S = 0.25
_CLOSE_POLL_S = 0.005


class DatabaseUnavailable(Exception):
    """The database cannot serve this request right now (stopped, restarting, unreachable, connection lost): the
    request may succeed if retried later, so it is a 503, never a 500."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause


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
    logging.getLogger("asyncpg.pool").addFilter(_BRIEF_WHEN_UNAVAILABLE)
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


class _BriefWhenUnavailable(logging.Filter):
    """asyncpg logs every failed attempt to reopen the pool's minimum connections with a full traceback: while the
    database restarts that is an expected ConnectionRefusedError each second or two, so it is cut to one line that
    names the cause. Anything else keeps its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, CONNECTION_LOST):
            record.msg, record.args = f"{record.getMessage()} ({type(exc).__name__}: {exc})", ()
            record.exc_info, record.exc_text = None, None
        return True


_BRIEF_WHEN_UNAVAILABLE = _BriefWhenUnavailable()


@asynccontextmanager
async def acquired(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A connection of `pool` for one unit of work. The database failing under it, at acquire or in use, raises
    DatabaseUnavailable; any other error, a bug, passes unchanged. A connection left unusable never goes back to
    the pool, and a failure to reset it on release does not replace the work's own outcome.

    Inside a counted request (timing.CURRENT set by GuardMiddleware) the wait for the connection and the time it
    was held, release included, are added to the request's timing."""
    timing = CURRENT.get()
    asked = time.perf_counter()
    try:
        proxy = await pool.acquire()
    except (*CONNECTION_LOST, *_DRIVER_REFUSAL) as exc:
        # no caller's code ran yet: a refusal here is the pool itself closing (the service shutting down)
        raise DatabaseUnavailable(exc) from exc
    finally:
        got = time.perf_counter()
        if timing is not None:
            timing.pool_wait_s += got - asked
    # the pool hands out a proxy that behaves as a Connection
    conn = cast(asyncpg.Connection, proxy)
    try:
        yield conn
    except CONNECTION_LOST as exc:
        raise DatabaseUnavailable(exc) from exc
    except _DRIVER_REFUSAL as exc:
        if await _closes(conn):
            raise DatabaseUnavailable(exc) from exc
        if isinstance(exc, asyncpg.InternalClientError):
            conn.terminate()  # its protocol state is corrupt: the next request must get a new connection
        raise
    finally:
        await _release(pool, proxy)
        if timing is not None:
            timing.held_s += time.perf_counter() - got


async def _closes(conn: asyncpg.Connection) -> bool:
    """Whether `conn` is closed, or closes within the grace period (its end of stream still on the way)."""
    deadline = time.monotonic() + _CLOSE_GRACE_S
    while not _is_closed(conn):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(_CLOSE_POLL_S)
    return True


def _is_closed(conn: asyncpg.Connection) -> bool:
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:
        # the pool detaches the proxy from a connection that closed under it (acquired() never releases early)
        return True


async def _release(pool: asyncpg.Pool, proxy: PoolConnectionProxy) -> None:
    try:
        await pool.release(proxy)
    except (*CONNECTION_LOST, *_DRIVER_REFUSAL) as exc:
        # the reset on release (keep_session's ROLLBACK) met a lost or broken connection; asyncpg has already
        # terminated it, the pool opens a new one when needed, and the work done on it stands
        log.warning("dropped a database connection that failed its reset on release (%s: %s)",
                    type(exc).__name__, exc)
