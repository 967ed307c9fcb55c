"""Evidence SQL in one place: the double-booking audit, acknowledged-vs-stored reconciliation, index usage
counters and the reset of earlier runs' bookings (used by the run pipeline and by `bookbench check audit`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg

from bookbench.db import notifications

# Where a target keeps its appointments (a profile's `audit` block names them; these are the reference schema's).
# Identifiers only: the profile model refuses anything that is not a plain (optionally schema-qualified) name.
REFERENCE_COLUMNS = {"table": "appointments", "id": "id", "tenant": "org_id", "contact": "contact_id",
                     "provider": "provider_id", "start": "scheduled_at", "duration_minutes": "duration_minutes",
                     "status": "status", "cancelled": "cancelled"}

# Overlap within (org, provider): a row overlaps an earlier one when it starts before the latest end seen so
# far. One sort instead of a self-join, so it stays a few seconds at 1M rows.
_OVERLAP = """
SELECT count(*) AS overlaps,
       (SELECT count(*) FROM {table} WHERE {status} <> $1) AS checked
  FROM (
    SELECT {start} AS s_start,
           max({start} + make_interval(mins => {duration_minutes})) OVER (
               PARTITION BY {tenant}, {provider} ORDER BY {start}, {id}
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_end
      FROM {table}
     WHERE {status} <> $1) s
 WHERE s_start < prev_end
"""


def _sql(template: str, columns: dict[str, str] | None) -> tuple[str, str]:
    cols = {**REFERENCE_COLUMNS, **(columns or {})}
    return template.format(**{k: v for k, v in cols.items() if k != "cancelled"}), cols["cancelled"]


INDEX_STATS_SQL = """
SELECT s.relname AS table, s.indexrelname AS index, s.idx_scan, s.idx_tup_read, s.idx_tup_fetch,
       pg_relation_size(s.indexrelid) AS size_bytes
  FROM pg_stat_user_indexes s
 WHERE s.schemaname = current_schema()
 ORDER BY s.relname, s.indexrelname
"""


async def max_appointment_id(conn: asyncpg.Connection, columns: dict[str, str] | None = None) -> int:
    sql, _ = _sql("SELECT coalesce(max({id}), 0) FROM {table}", columns)
    return int(await conn.fetchval(sql))


async def reset_bookings(conn: asyncpg.Connection, seeded_appointments: int) -> int:
    """Remove bookings made by earlier runs (and what they queued in the notification outbox) so that every run
    starts from the generated dataset."""
    deleted = await conn.execute("DELETE FROM appointments WHERE id > $1", seeded_appointments)
    await notifications.reset(conn)
    return int(deleted.split()[-1])


async def delete_own(conn: asyncpg.Connection, ids: list[int]) -> int:
    """Delete exactly these appointments (the ones a run can prove it created) and what they queued in the
    notification outbox; nothing else. Returns the appointments deleted."""
    if not ids:
        return 0
    async with conn.transaction():
        await conn.execute("DELETE FROM notification_outbox WHERE appointment_id = ANY($1::bigint[])", ids)
        deleted = await conn.execute("DELETE FROM appointments WHERE id = ANY($1::bigint[])", ids)
    return int(deleted.split()[-1])


async def index_stats(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(INDEX_STATS_SQL)]


async def reconcile(conn: asyncpg.Connection, acknowledged: list[int], id_before: int,
                    attempts: list[tuple[int, int, str]] | None = None,
                    columns: dict[str, str] | None = None) -> dict[str, Any]:
    """lost: acknowledged (201) but not in the table; phantom: a new row this run asked for (its contact,
    provider and start match a booking the load sent) that nobody was told about. New rows that match none of
    the run's attempts belong to another writer (a deployment's own traffic, a check run beside it): counted as
    `other_writers`, never as phantoms. Without attempts (run folders from before they were recorded) every new
    row is the run's, as before."""
    stored_sql, _ = _sql("SELECT {id} AS id FROM {table} WHERE {id} = ANY($1::bigint[])", columns)
    new_sql, _ = _sql("SELECT {id} AS id, {contact} AS contact_id, {provider} AS provider_id, {start} AS scheduled_at "
                      "FROM {table} WHERE {id} > $1", columns)
    stored = {r["id"] for r in await conn.fetch(stored_sql, acknowledged)}
    new_rows = await conn.fetch(new_sql, id_before)
    acked = set(acknowledged)
    lost = sorted(acked - stored)
    if attempts is None:
        ours = {r["id"] for r in new_rows}
    else:
        asked = {(c, p, dt.datetime.fromisoformat(start)) for c, p, start in attempts}
        ours = {r["id"] for r in new_rows if (r["contact_id"], r["provider_id"], r["scheduled_at"]) in asked}
    phantom = sorted(ours - acked)
    others = len({r["id"] for r in new_rows} - ours - acked)
    return {"acknowledged": len(acked), "new_rows": len(new_rows), "lost": len(lost), "phantom": len(phantom),
            "other_writers": others, "lost_ids": lost[:20], "phantom_ids": phantom[:20],
            "phantom_all": phantom, "ok": not lost and not phantom}


async def audit(conn: asyncpg.Connection, columns: dict[str, str] | None = None) -> dict[str, Any]:
    sql, cancelled = _sql(_OVERLAP, columns)
    row = await conn.fetchrow(sql, cancelled)
    if row is None:  # an aggregate always returns a row; keeps mypy honest without an assert
        return {"overlaps": 0, "checked": 0, "ok": True}
    return {"overlaps": int(row["overlaps"]), "checked": int(row["checked"]), "ok": int(row["overlaps"]) == 0}
