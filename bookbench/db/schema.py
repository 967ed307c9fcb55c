"""Applies sql/schema/*.sql idempotently and records the schema version in bookbench_meta."""

from __future__ import annotations

import hashlib
import json

import asyncpg

from bookbench.db.conn import SQL_DIR

# Bump when a schema file changes in a way that needs a re-seed.
SCHEMA_VERSION = 1


def schema_files() -> list[str]:
    return [p.read_text() for p in sorted((SQL_DIR / "schema").glob("*.sql"))]


def schema_digest() -> str:
    return hashlib.sha256("\n".join(schema_files()).encode()).hexdigest()[:16]


async def apply_schema(conn: asyncpg.Connection) -> None:
    # One advisory lock so that two bookbench processes starting at once do not race on CREATE.
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(7426001)")
        for sql in schema_files():
            await conn.execute(sql)
        await conn.execute(
            "INSERT INTO bookbench_meta (key, value) VALUES ('schema', $1::jsonb) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            json.dumps({"version": SCHEMA_VERSION, "digest": schema_digest()}),
        )


async def schema_version(conn: asyncpg.Connection) -> int | None:
    exists = await conn.fetchval("SELECT to_regclass('bookbench_meta') IS NOT NULL")
    if not exists:
        return None
    raw = await conn.fetchval("SELECT value FROM bookbench_meta WHERE key = 'schema'")
    return None if raw is None else int(json.loads(raw)["version"])
