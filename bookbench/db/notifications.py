"""The notification outbox seen from bookbench: reset between scenarios, backlog, and the facts a run records."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg

RESET_SQL = """
DELETE FROM notification_outbox;
DELETE FROM notification_breaker_log;
UPDATE notification_breaker SET state = 'closed', failures = 0, open_until = NULL, updated_at = clock_timestamp();
"""


async def reset(conn: asyncpg.Connection) -> None:
    """Every scenario starts with an empty outbox and closed breakers (what earlier runs queued is not ours)."""
    await conn.execute(RESET_SQL)


async def pending(conn: asyncpg.Connection, id_after: int) -> int:
    """Notifications of this scenario's appointments not yet delivered (nor dead-lettered)."""
    return int(await conn.fetchval(
        "SELECT count(*) FROM notification_outbox WHERE appointment_id > $1 AND status = 'pending'", id_after))


# this scenario's outbox rows, as the facts record them (OutboxRow's columns, in its order)
OUTBOX_ROWS = """
    SELECT appointment_id, channel, kind, dedup_key, EXTRACT(epoch FROM created_at)::float8 AS created_at,
           status, attempts, EXTRACT(epoch FROM sent_at)::float8 AS sent_at, conflict, last_error
      FROM notification_outbox WHERE appointment_id > $1 ORDER BY id"""


async def outbox_batches(conn: asyncpg.Connection, id_after: int, size: int) -> AsyncIterator[list[dict[str, Any]]]:
    """This scenario's outbox rows, `size` at a time through a cursor: a soak's half a million rows never sit in
    memory together."""
    async with conn.transaction(readonly=True):  # a cursor lives in a transaction
        cursor = await conn.cursor(OUTBOX_ROWS, id_after)
        while batch := await cursor.fetch(size):
            yield [dict(r) for r in batch]


async def breaker_log(conn: asyncpg.Connection, since: float) -> list[dict[str, Any]]:
    rows = await conn.fetch("""
        SELECT EXTRACT(epoch FROM at)::float8 AS t, provider, state FROM notification_breaker_log
         WHERE at >= to_timestamp($1) ORDER BY id""", since)
    return [dict(r) for r in rows]
