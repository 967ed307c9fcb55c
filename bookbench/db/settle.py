"""The same starting state before every scenario, so that identical runs measure alike: earlier runs' bookings
removed and vacuumed, tables and indexes in shared buffers, no checkpoint or autovacuum pending.

Each step is something an A/A test on this machine showed to move the figures between identical runs: the dead
tuples a deletion leaves make the next run's conflict checks visit more heap pages; a checkpoint landing inside
an 8-second burst stalls it; autovacuum woken by the deletion competes for the two cores; a cold buffer cache
makes the first seconds of whichever run touches a page first slower.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg

from bookbench.db.audit import delete_own, reset_bookings

AUTOVACUUM_WAIT_S = 30.0
TABLES = ("appointments", "contacts", "providers", "organizations")

_WORKERS_SQL = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'"
_PREWARM_SQL = """
SELECT coalesce(sum(pg_prewarm(c.oid)), 0)::bigint
FROM pg_class c
WHERE c.relname = ANY($1::text[])
   OR c.oid IN (SELECT indexrelid FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
                WHERE t.relname = ANY($1::text[]))
"""


async def settle(conn: asyncpg.Connection, seeded_appointments: int | None,
                 own_ids: list[int] | None = None, maintain: bool = True) -> dict[str, Any]:
    """Remove bookings, VACUUM, prewarm, CHECKPOINT and wait for autovacuum; what could not be done (a role
    without the rights on a --dsn database) is reported, not fatal. On bookbench's own database
    (`seeded_appointments` given) every booking beyond the dataset goes; on any other only `own_ids`, the
    run's own bookings where it may delete them, and no extension is created there. Without `maintain` (a
    deployment's database) no VACUUM and no CHECKPOINT either: the settling there is reads and waiting."""
    started = time.monotonic()
    out: dict[str, Any] = {}
    own = seeded_appointments is not None
    out["bookings_removed"] = (await reset_bookings(conn, seeded_appointments) if seeded_appointments is not None
                               else await delete_own(conn, own_ids or []))
    if not maintain:
        out["skipped"] = ["vacuum and checkpoint: a database bookbench did not create"]
    else:
        # no ANALYZE here: re-sampling statistics before every scenario could flip a plan between identical runs
        await conn.execute("VACUUM appointments")
        await conn.execute("VACUUM notification_outbox")
    try:
        if own:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        out["prewarmed_pages"] = int(await conn.fetchval(_PREWARM_SQL, list(TABLES)))
    except asyncpg.PostgresError as exc:
        out["prewarmed_pages"] = None
        out.setdefault("skipped", []).append(f"prewarm: {type(exc).__name__}")
    try:
        if maintain:
            await conn.execute("CHECKPOINT")
    except asyncpg.PostgresError as exc:
        out.setdefault("skipped", []).append(f"checkpoint: {type(exc).__name__}")
    waited = time.monotonic()
    while await conn.fetchval(_WORKERS_SQL) and time.monotonic() - waited < AUTOVACUUM_WAIT_S:
        await asyncio.sleep(0.25)
    out["autovacuum_wait_s"] = round(time.monotonic() - waited, 2)
    out["seconds"] = round(time.monotonic() - started, 2)
    return out
