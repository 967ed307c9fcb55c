"""Query-level evidence per index set: EXPLAIN (ANALYZE, BUFFERS) of every statement the service runs, the plan a
prepared statement settles on after five executions, and the write cost of one booking (time and WAL)."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import asyncpg

from bookbench.artifacts import explain as explain_file
from bookbench.config.dataset import DatasetParams
from target_service import queries

# The conflict check as book_appointment_atomic runs it: the schema's one definition (sql/schema/002_booking.sql),
# which the planner inlines, so the EXPLAIN shows the scan of appointments and the index it uses.
CONFLICT_CHECK = "SELECT 1 FROM appointment_conflicts($1, $2, $3, $4)"
CONFLICT_FUNCTION = "appointment_conflicts(bigint, bigint, timestamptz, timestamptz)"
INSERT = """
INSERT INTO appointments (org_id, contact_id, provider_id, scheduled_at, duration_minutes, status)
VALUES ($1, $2, $3, $4, 30, 'booked')
"""
WARM_RUNS = 3
PREPARED_RUNS = 6  # PostgreSQL considers a generic plan from the sixth execution of a prepared statement


def _statements(params: DatasetParams) -> dict[str, tuple[str, tuple[Any, ...], bool]]:
    """name -> (sql, representative parameters, writes: run inside a rolled-back transaction)."""
    org = 1
    provider = params.providers_of(org)[0]
    contact = params.contacts_of(org)[0]
    day = dt.datetime.combine(params.anchor + dt.timedelta(days=10), dt.time(9), tzinfo=dt.UTC)
    free = day + dt.timedelta(days=params.future_days + 30)  # beyond the seeded horizon: always free
    return {
        "availability": (queries.AVAILABILITY, (org, provider, day, day + dt.timedelta(hours=8)), False),
        "upcoming": (queries.UPCOMING, (org, contact), False),
        "conflict_check": (CONFLICT_CHECK, (org, provider, day, day + dt.timedelta(minutes=30)), False),
        "insert": (INSERT, (org, contact, provider, free), True),
        "cancel": (queries.CANCEL, (org, 1), True),
    }


def _walk(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(n for child in node.get("Plans", []) for n in _walk(child))]


def plan_summary(plan_json: list[dict[str, Any]]) -> dict[str, Any]:
    """The facts a reader compares across index sets: node types, indexes used, rows, times, buffers."""
    top = plan_json[0]
    nodes = _walk(top["Plan"])
    return {
        "nodes": [n["Node Type"] for n in nodes],
        "indexes": sorted({n["Index Name"] for n in nodes if "Index Name" in n}),
        "seq_scans": sorted({n["Relation Name"] for n in nodes if n["Node Type"] == "Seq Scan"}),
        "rows": top["Plan"].get("Actual Rows"),
        "planning_ms": top.get("Planning Time"),
        "execution_ms": top.get("Execution Time"),
        "shared_hit": top["Plan"].get("Shared Hit Blocks"),
        "shared_read": top["Plan"].get("Shared Read Blocks"),
    }


async def _explain(conn: asyncpg.Connection, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
    tx = conn.transaction()
    await tx.start()
    try:
        raw = await conn.fetchval("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, *args)
    finally:
        await tx.rollback()  # EXPLAIN ANALYZE really executes: writes must not stay
    return list(json.loads(raw) if isinstance(raw, str) else raw)


def _literal(value: Any) -> str:
    """EXECUTE takes no protocol parameters: our own values (ints and datetimes) as SQL literals."""
    if isinstance(value, dt.datetime):
        return f"'{value.isoformat()}'::timestamptz"
    if isinstance(value, int):
        return str(value)
    raise TypeError(f"no literal for {type(value).__name__}")


async def _generic_plan(conn: asyncpg.Connection, name: str, sql: str, args: tuple[Any, ...]) -> dict[str, Any]:
    """What a prepared statement runs from its sixth execution on: the plan, and whether it went generic."""
    tx = conn.transaction()
    await tx.start()
    try:
        await conn.execute(f"PREPARE bb_{name} AS {sql}")
        execute = f"EXECUTE bb_{name}({', '.join(_literal(a) for a in args)})"
        for _ in range(PREPARED_RUNS):
            await conn.fetch(execute)
        raw = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {execute}")
        plan = list(json.loads(raw) if isinstance(raw, str) else raw)
        await conn.execute(f"DEALLOCATE bb_{name}")
    finally:
        await tx.rollback()
    text = json.dumps(plan)
    # a generic plan keeps the parameters as $n in its conditions; a custom plan has the values folded in
    return {"generic": "$1" in text or "$2" in text, **plan_summary([{"Plan": plan[0]["Plan"]}])}


async def explain_all(conn: asyncpg.Connection, params: DatasetParams, out_dir: Path,
                      writes_allowed: bool = True) -> dict[str, Any]:
    """Warm each statement, EXPLAIN ANALYZE it, record its prepared-statement plan; write one JSON per query.
    Without `writes_allowed` (a database bookbench did not create) the writing statements are left out: even
    rolled back they lock a real row and use up identity values there. A deployment whose schema predates the
    conflict check's own function (bookbench never changes a deployment's schema) is EXPLAINed without it."""
    results: dict[str, Any] = {}
    has_check = await conn.fetchval("SELECT to_regprocedure($1) IS NOT NULL", CONFLICT_FUNCTION)
    for name, (sql, args, writes) in _statements(params).items():
        if (writes and not writes_allowed) or (sql is CONFLICT_CHECK and not has_check):
            continue
        if not writes:
            for _ in range(WARM_RUNS):
                await conn.fetch(sql, *args)
        plan = await _explain(conn, sql, args)
        summary = plan_summary(plan)
        summary["prepared"] = await _generic_plan(conn, name, sql, args)
        explain_file.write(out_dir, name, sql, plan, summary)
        results[name] = summary
    return results


async def write_cost(conn: asyncpg.Connection, params: DatasetParams, bookings: int = 200,
                     budget_s: float = 2.0) -> dict[str, Any]:
    """Time and WAL per booking through book_appointment_atomic, in a transaction that is rolled back.
    Up to `bookings` per pass, fewer when a pass would exceed `budget_s` (without an index one costs ~60 ms)."""
    org = 1
    providers = list(params.providers_of(org))
    contact = params.contacts_of(org)[0]
    base = dt.datetime.combine(params.anchor + dt.timedelta(days=params.future_days + 60), dt.time(9),
                               tzinfo=dt.UTC)
    async def one_pass(limit: int) -> tuple[int, float, float]:
        tx = conn.transaction()
        await tx.start()
        try:
            lsn_before = await conn.fetchval("SELECT pg_current_wal_insert_lsn()")
            started = time.perf_counter()
            done = 0
            while done < limit and (done < 5 or time.perf_counter() - started < budget_s):
                i = done
                start = base + dt.timedelta(days=i // (16 * len(providers)), minutes=30 * (i % 16))
                await conn.fetchrow(queries.BOOK, org, contact, providers[(i // 16) % len(providers)], start, 30)
                done += 1
            seconds = time.perf_counter() - started
            wal = await conn.fetchval("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1::pg_lsn)",
                                      lsn_before)
        finally:
            await tx.rollback()
        return done, seconds, float(wal)

    # The first pass after a checkpoint logs full-page images of every page it touches, which would swamp the
    # per-index cost; the second pass repeats the same bookings on the same pages and shows the steady WAL.
    first, _, _ = await one_pass(bookings)
    done, seconds, wal = await one_pass(first)
    return {"bookings": done, "ms_per_booking": 1000 * seconds / done, "wal_bytes_per_booking": wal / done}


TABLE_STATS_SQL = """
SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_live_tup, n_dead_tup
  FROM pg_stat_user_tables WHERE relname = 'appointments'
"""


async def table_stats(conn: asyncpg.Connection) -> dict[str, int]:
    # pg_stat counters are updated when a backend reports them; force a fresh snapshot for this session
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    row = await conn.fetchrow(TABLE_STATS_SQL)
    return {} if row is None else {k: int(v) for k, v in dict(row).items() if k != "relname"}
