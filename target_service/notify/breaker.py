"""The seed's "database circuit breaker": one row per provider in notification_breaker, shared by every dispatcher.

closed -> open after `failures` provider faults in a row; open for `cooldown`; then one dispatcher wins the
half-open probe (a conditional UPDATE), its result closes or reopens the breaker. Every transition is logged in
notification_breaker_log for the report.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

import asyncpg

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

# a plain connection or one borrowed from a pool (a string: the proxy is generic only in the type stubs)
Conn: TypeAlias = "asyncpg.Connection | PoolConnectionProxy[asyncpg.Record]"

# open -> half_open for exactly one caller: the UPDATE's WHERE is the race's referee
_PROBE = """
UPDATE notification_breaker SET state = 'half_open', updated_at = clock_timestamp()
 WHERE provider = $1 AND state = 'open' AND open_until <= clock_timestamp()
RETURNING provider
"""
_SUCCESS = """
WITH prev AS (SELECT state FROM notification_breaker WHERE provider = $1),
upd AS (UPDATE notification_breaker SET state = 'closed', failures = 0, open_until = NULL,
               updated_at = clock_timestamp()
         WHERE provider = $1 AND (state <> 'closed' OR failures <> 0) RETURNING provider)
INSERT INTO notification_breaker_log (provider, state)
SELECT $1, 'closed' FROM prev, upd WHERE prev.state <> 'closed'
"""
_FAILURE = """
WITH upd AS (
    UPDATE notification_breaker b
       SET failures = b.failures + 1,
           state = CASE WHEN b.state = 'half_open' OR b.failures + 1 >= $2 THEN 'open' ELSE b.state END,
           open_until = CASE WHEN b.state = 'half_open' OR b.failures + 1 >= $2
                             THEN clock_timestamp() + make_interval(secs => $3) ELSE b.open_until END,
           updated_at = clock_timestamp()
     WHERE provider = $1 AND b.state <> 'open'
    RETURNING b.state)
INSERT INTO notification_breaker_log (provider, state) SELECT $1, 'open' FROM upd WHERE upd.state = 'open'
"""


async def gate(conn: Conn, provider: str) -> tuple[str, float]:
    """("send" | "probe" | "wait", seconds to wait). "probe": this dispatcher may send one request to test the
    provider; "wait": the breaker is open (or another dispatcher is probing)."""
    row = await conn.fetchrow(
        "SELECT state, GREATEST(0, EXTRACT(epoch FROM open_until - clock_timestamp()))::float8 AS left_s "
        "FROM notification_breaker WHERE provider = $1", provider)
    if row is None or row["state"] == "closed":
        return "send", 0.0
    if row["state"] == "open" and (row["left_s"] or 0.0) <= 0 and await conn.fetchval(_PROBE, provider):
        return "probe", 0.0
    return "wait", max(float(row["left_s"] or 0.0), 0.2)


async def record(conn: Conn, provider: str, ok: bool, failures: int, cooldown_s: float) -> None:
    if ok:
        await conn.execute(_SUCCESS, provider)
    else:
        await conn.execute(_FAILURE, provider, failures, cooldown_s)
