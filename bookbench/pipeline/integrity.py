"""After each scenario: double-booking audit, acknowledged-vs-stored reconciliation, index usage, counts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bookbench.checks.database import OVERLAP_SQL

INDEX_STATS_SQL = """
SELECT s.relname AS table, s.indexrelname AS index, s.idx_scan, s.idx_tup_read, s.idx_tup_fetch,
       pg_relation_size(s.indexrelid) AS size_bytes
  FROM pg_stat_user_indexes s
 WHERE s.schemaname = current_schema()
 ORDER BY s.relname, s.indexrelname
"""


async def max_appointment_id(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM appointments"))


async def reset_bookings(conn: asyncpg.Connection, seeded_appointments: int) -> int:
    """Remove bookings made by earlier runs so that every run starts from the generated dataset."""
    deleted = await conn.execute("DELETE FROM appointments WHERE id > $1", seeded_appointments)
    return int(deleted.split()[-1])


async def index_stats(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(INDEX_STATS_SQL)]


def read_acknowledged(path: Path) -> list[int]:
    if not path.exists():
        return []
    return [int(line) for line in path.read_text().split()]


async def reconcile(conn: asyncpg.Connection, acknowledged: list[int], id_before: int) -> dict[str, Any]:
    """lost: acknowledged (201) but not in the table; phantom: new rows nobody was told about."""
    stored = {r["id"] for r in await conn.fetch("SELECT id FROM appointments WHERE id = ANY($1::bigint[])",
                                                acknowledged)}
    new_rows = {r["id"] for r in await conn.fetch("SELECT id FROM appointments WHERE id > $1", id_before)}
    acked = set(acknowledged)
    lost = sorted(acked - stored)
    phantom = sorted(new_rows - acked)
    return {"acknowledged": len(acked), "new_rows": len(new_rows), "lost": len(lost), "phantom": len(phantom),
            "lost_ids": lost[:20], "phantom_ids": phantom[:20], "ok": not lost and not phantom}


async def audit(conn: asyncpg.Connection) -> dict[str, Any]:
    row = await conn.fetchrow(OVERLAP_SQL)
    assert row is not None
    return {"overlaps": int(row["overlaps"]), "checked": int(row["checked"]), "ok": int(row["overlaps"]) == 0}


def service_handled(base_url: str) -> int | None:
    """The service's own count of handled requests (None for a deployment without /stats)."""
    try:
        resp = httpx.get(f"{base_url}/stats", timeout=5)
        return int(resp.json()["handled"]) if resp.status_code == 200 else None
    except (httpx.HTTPError, ValueError, KeyError):
        return None


def locust_request_count(stats_json: Path) -> int | None:
    """Locust's own final total (its --json-file, one entry per endpoint), for cross-checking our samples."""
    try:
        entries = json.loads(stats_json.read_text())
    except (OSError, ValueError):
        return None
    return sum(int(e["num_requests"]) for e in entries)
