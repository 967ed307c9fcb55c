"""The database side of one soak probe: connections by state, table and index sizes with the collector's vacuum
counters, and the outbox backlog, read with SELECTs only, on a connection (`connect`) whose session is read-only: a
user's deployment is never written to, even by a mistake in a query here.

Each part is read on its own: a missing table or privilege makes that part "not measured: <why>" and the others
are still read. Every query is a catalog or statistics read, or a count over the outbox's partial index of pending
rows, so a probe costs the database about a millisecond.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from bookbench.artifacts.soak import SOAK_TABLES, TableProbe

SOAK_APPLICATION_NAME = "bookbench-soak"  # the probe's own connection: left out of its own connection counts
QUERY_TIMEOUT_S = 5.0
# the probe's session, set by the server at connection time (not by a SET the probe could forget): every transaction
# read-only, and a probe that waits on a lock or a slow catalog gives up on the server side too, so it never holds a
# backend or a lock of the user's database beyond one probe
SERVER_SETTINGS = {"application_name": SOAK_APPLICATION_NAME, "default_transaction_read_only": "on",
                   "statement_timeout": f"{QUERY_TIMEOUT_S:g}s", "lock_timeout": "1s"}
_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError, OSError)

# pg_stat_activity of the run's database: a backend of a role this role may not read has a NULL state and the query
# '<insufficient privilege>'; it is counted as "hidden", not dropped, so the total stays right
_CONNECTIONS = """
SELECT CASE WHEN state IS NULL AND query = '<insufficient privilege>' THEN 'hidden'
            ELSE coalesce(state, 'starting') END AS state, count(*)::int AS n
  FROM pg_stat_activity
 WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()
 GROUP BY 1
"""
# to_regclass: a table missing from this database (another target profile's schema) reads NULL, not an error
_TABLES = """
SELECT t.name, c.oid IS NOT NULL AS found,
       pg_total_relation_size(c.oid) AS total_bytes, pg_relation_size(c.oid) AS table_bytes,
       pg_indexes_size(c.oid) AS index_bytes, s.n_live_tup, s.n_dead_tup, s.autovacuum_count, s.autoanalyze_count,
       extract(epoch FROM s.last_autovacuum)::float8 AS last_autovacuum
  FROM unnest($1::text[]) AS t(name)
  LEFT JOIN pg_class c ON c.oid = to_regclass(t.name)
  LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
"""
_OUTBOX = "SELECT count(*)::int FROM notification_outbox WHERE status = 'pending'"


async def connect(dsn: str, timeout: float) -> asyncpg.Connection:
    """The probe's own connection, in a read-only session (SERVER_SETTINGS)."""
    return await asyncpg.connect(dsn, timeout=timeout, server_settings=SERVER_SETTINGS)


def _why(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"not measured: {type(exc).__name__}" + (f": {text}" if text else "")


async def connections(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch(_CONNECTIONS, timeout=QUERY_TIMEOUT_S)
    return {str(r["state"]): int(r["n"]) for r in rows}


async def tables(conn: asyncpg.Connection, names: tuple[str, ...] = SOAK_TABLES) -> tuple[dict[str, TableProbe], str]:
    """The tables found, and what was not ("" when every one was)."""
    rows = await conn.fetch(_TABLES, list(names), timeout=QUERY_TIMEOUT_S)
    found = {str(r["name"]): TableProbe.model_validate({k: r[k] for k in TableProbe.model_fields})
             for r in rows if r["found"] and r["total_bytes"] is not None}
    missing = [n for n in names if n not in found]
    return found, (f"not measured: no table {', '.join(missing)} in this database" if missing else "")


async def outbox_pending(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval(_OUTBOX, timeout=QUERY_TIMEOUT_S))


async def probe(conn: asyncpg.Connection) -> dict[str, Any]:
    """The database fields of one Probe (connections, tables, outbox_pending, not_measured). A part that fails is
    named in not_measured; a broken connection fails every later part the same way, which the caller sees as
    `conn.is_closed()` and reconnects for the next probe."""
    out: dict[str, Any] = {"not_measured": {}}
    try:
        out["connections"] = await connections(conn)
    except _ERRORS as exc:
        out["not_measured"]["connections"] = _why(exc)
    try:
        found, missing = await tables(conn)
        if found:
            out["tables"] = found
        if missing:
            out["not_measured"]["tables"] = missing
    except _ERRORS as exc:
        out["not_measured"]["tables"] = _why(exc)
    try:
        out["outbox_pending"] = await outbox_pending(conn)
    except asyncpg.UndefinedTableError:
        out["not_measured"]["outbox"] = "not measured: no notification_outbox table in this database"
    except _ERRORS as exc:
        out["not_measured"]["outbox"] = _why(exc)
    return out
