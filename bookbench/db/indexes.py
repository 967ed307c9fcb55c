"""Named index sets from sql/indexes/: parse, apply exactly, drop back to the baseline, report status."""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from bookbench.db.conn import SQL_DIR
from bookbench.errors import UsageError

BASELINE = "none"
TABLES = ("organizations", "providers", "contacts", "appointments")
# a folder of the user's own sets (`--index-dir`, through the environment so that every stage and child process
# of one command sees the same sets)
INDEX_DIR_ENV = "BOOKBENCH_INDEX_DIR"
_CREATE = re.compile(
    r"CREATE\s+INDEX\s+CONCURRENTLY\s+IF\s+NOT\s+EXISTS\s+(?P<name>\w+)\s+ON\s+(?P<table>\w+)", re.IGNORECASE
)


@dataclass(frozen=True)
class IndexDef:
    name: str
    table: str
    sql: str


@dataclass(frozen=True)
class IndexStatus:
    name: str
    table: str
    index_set: str
    size_bytes: int
    idx_scan: int
    valid: bool
    definition: str


def _folders() -> list[Path]:
    extra = os.environ.get(INDEX_DIR_ENV)
    return ([Path(extra)] if extra else []) + [SQL_DIR / "indexes"]


def _set_file(name: str) -> Path | None:
    return next((folder / f"{name}.sql" for folder in _folders() if (folder / f"{name}.sql").exists()), None)


def available_sets() -> list[str]:
    return [BASELINE, *sorted({p.stem for folder in _folders() for p in folder.glob("*.sql")})]


def tables() -> list[str]:
    """The tables whose performance indexes bookbench manages: the reference schema's, and every table a set
    file (built-in or --index-dir) indexes."""
    named = {d.table for name in available_sets() for d in load_set(name)}
    return [*TABLES, *sorted(named - set(TABLES))]


def _strip_comments(sql: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in sql.splitlines())


def load_set(name: str) -> list[IndexDef]:
    """The CREATE INDEX statements of one set; `none` is the empty baseline."""
    if name == BASELINE:
        return []
    path = _set_file(name)
    if path is None:
        raise UsageError(f"unknown index set {name!r}; available: {', '.join(available_sets())}")
    defs = []
    for statement in _strip_comments(path.read_text()).split(";"):
        statement = " ".join(statement.split())
        if not statement:
            continue
        match = _CREATE.match(statement)
        if match is None:
            raise UsageError(
                f"{path.name}: every statement must be CREATE INDEX CONCURRENTLY IF NOT EXISTS, got: "
                f"{statement[:80]}"
            )
        defs.append(IndexDef(match["name"], match["table"], statement))
    return defs


def set_of_index(name: str) -> str:
    for set_name in available_sets():
        if any(d.name == name for d in load_set(set_name)):
            return set_name
    return "(unknown)"


_STATUS_SQL = """
SELECT c.relname AS name, t.relname AS tbl, pg_relation_size(c.oid) AS size, i.indisvalid AS valid,
       coalesce(s.idx_scan, 0) AS idx_scan, pg_get_indexdef(c.oid) AS definition
  FROM pg_index i
  JOIN pg_class c ON c.oid = i.indexrelid
  JOIN pg_class t ON t.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
  LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = c.oid
 WHERE n.nspname = current_schema()
   AND t.relname = ANY($1::text[])
   AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = c.oid)
 ORDER BY t.relname, c.relname
"""


async def status(conn: asyncpg.Connection) -> list[IndexStatus]:
    """Every non-constraint index on the service's tables, with its set, size and scans so far."""
    rows = await conn.fetch(_STATUS_SQL, tables())
    return [
        IndexStatus(r["name"], r["tbl"], set_of_index(r["name"]), int(r["size"]), int(r["idx_scan"]),
                    bool(r["valid"]), r["definition"])
        for r in rows
    ]


async def drop_all(conn: asyncpg.Connection, keep: frozenset[str] = frozenset()) -> list[str]:
    """Drop every performance index (not those backing constraints) except `keep`; back to the baseline."""
    dropped = []
    for idx in await status(conn):
        if idx.name in keep and idx.valid:
            continue
        # CONCURRENTLY cannot run in a transaction block; asyncpg's execute is autocommit here.
        await conn.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{idx.name}"')
        dropped.append(idx.name)
    return dropped


@dataclass(frozen=True)
class ApplyReport:
    created: list[str]
    dropped: list[str]
    seconds: float


async def apply(conn: asyncpg.Connection, set_name: str, exclusive: bool = True) -> ApplyReport:
    """Make `set_name` the indexes present (or add it, with exclusive=False), then VACUUM ANALYZE."""
    defs = load_set(set_name)
    started = time.perf_counter()
    wanted = frozenset(d.name for d in defs)
    dropped = await drop_all(conn, keep=wanted) if exclusive else []
    # an INVALID leftover of an interrupted CONCURRENTLY build would make IF NOT EXISTS skip the real one
    for leftover in [i for i in await status(conn) if not i.valid and i.name in wanted]:
        await conn.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{leftover.name}"')
        dropped.append(leftover.name)
    present = {s.name for s in await status(conn) if s.valid}
    created = []
    for d in defs:
        if d.name in present:
            continue
        await conn.execute(d.sql)
        created.append(d.name)
    # the tables that exist here: a user's --index-dir may name tables of their schema, not of ours
    existing = [r["t"] for r in await conn.fetch(
        "SELECT relname AS t FROM pg_class WHERE relkind = 'r' AND relname = ANY($1::text[]) "
        "AND relnamespace = current_schema()::regnamespace", tables())]
    await conn.execute("VACUUM ANALYZE " + ", ".join(f'"{t}"' for t in existing))
    await conn.execute(
        "INSERT INTO bookbench_meta (key, value) VALUES ('index_set', to_jsonb($1::text)) "
        "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        set_name if exclusive else "mixed",
    )
    return ApplyReport(created, dropped, time.perf_counter() - started)


_DEFINITIONS_SQL = """
SELECT c.relname AS name, t.relname AS tbl, i.indisprimary AS is_primary, i.indisunique AS is_unique,
       EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = c.oid) AS is_constraint,
       array(SELECT a.attname::text
               FROM unnest((i.indkey::int2[])[0:i.indnkeyatts - 1]) WITH ORDINALITY AS u(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = u.attnum
              ORDER BY u.ord) AS keys,
       i.indnkeyatts AS key_count,
       pg_get_expr(i.indpred, i.indrelid) AS predicate, pg_relation_size(c.oid) AS size_bytes
  FROM pg_index i
  JOIN pg_class c ON c.oid = i.indexrelid
  JOIN pg_class t ON t.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
 WHERE n.nspname = current_schema() AND t.relname = ANY($1::text[])
 ORDER BY t.relname, c.relname
"""


async def definitions(conn: asyncpg.Connection) -> list[dict[str, object]]:
    """Every index on the service's tables, constraint ones included, with its key columns and predicate:
    what the redundancy analysis (duplicate of a key, left prefix of another index) needs."""
    return [dict(r) for r in await conn.fetch(_DEFINITIONS_SQL, tables())]
