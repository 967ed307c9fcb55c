"""Seeding the deterministic dataset into the database (kept when one with the same parameters exists)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import asyncpg

from bookbench.config.dataset import DatasetParams
from bookbench.db.schema import apply_schema

_APPOINTMENT_FKS = {
    "appointments_org_id_fkey": "FOREIGN KEY (org_id) REFERENCES organizations (id)",
    "appointments_contact_id_fkey": "FOREIGN KEY (contact_id) REFERENCES contacts (id)",
    "appointments_provider_id_fkey": "FOREIGN KEY (provider_id) REFERENCES providers (id)",
}


@dataclass(frozen=True)
class SeedReport:
    reused: bool
    seconds: float
    row_counts: dict[str, int]
    table_sizes: dict[str, int]


@dataclass(frozen=True)
class DatabaseState:
    """What a database holds before bookbench touches it: enough to decide, read-only, whether it may seed."""

    has_tables: bool  # the service's appointments table exists
    has_rows: bool  # any row in organizations, providers, contacts or appointments
    dataset: dict[str, Any] | None  # bookbench_meta's record of the dataset bookbench seeded, if any

    def fingerprint(self) -> str | None:
        return None if self.dataset is None else str(self.dataset.get("fingerprint"))


async def database_state(conn: asyncpg.Connection) -> DatabaseState:
    """Read-only: never creates a table (a user's database is inspected before anything is decided)."""
    if not await conn.fetchval("SELECT to_regclass('appointments') IS NOT NULL"):
        return DatabaseState(False, False, None)
    has_rows = False
    for table in ("appointments", "contacts", "providers", "organizations"):
        # a table of the same name with other columns still holds someone's rows
        if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table):
            has_rows = has_rows or bool(await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {table})"))
    dataset = None
    if await conn.fetchval("SELECT to_regclass('bookbench_meta') IS NOT NULL"):
        dataset = await current_dataset(conn)
    return DatabaseState(True, has_rows, dataset)


async def current_dataset(conn: asyncpg.Connection) -> dict[str, Any] | None:
    raw = await conn.fetchval("SELECT value FROM bookbench_meta WHERE key = 'dataset'")
    return None if raw is None else dict(json.loads(raw))


async def table_stats(conn: asyncpg.Connection) -> tuple[dict[str, int], dict[str, int]]:
    counts: dict[str, int] = {}
    sizes: dict[str, int] = {}
    for table in ("organizations", "providers", "contacts", "appointments"):
        counts[table] = int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
        sizes[table] = int(await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", table))
    return counts, sizes


async def seed(conn: asyncpg.Connection, params: DatasetParams, force: bool = False) -> SeedReport:
    """Fill the tables for `params`; a dataset with the same fingerprint is kept as it is unless `force`."""
    params.validate()
    started = time.perf_counter()
    await apply_schema(conn)
    existing = await current_dataset(conn)
    if not force and existing is not None and existing.get("fingerprint") == params.fingerprint():
        counts, sizes = await table_stats(conn)
        return SeedReport(True, time.perf_counter() - started, counts, sizes)

    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(7426002)")
        # the outbox and breaker log go too: a re-seed restarts the appointment ids, and an old outbox row's key
        # (its appointment id) would then refuse the new booking that reuses the id (found when the dataset's anchor
        # day changed at midnight: every booking in the reused check database answered 500)
        await conn.execute("TRUNCATE appointments, contacts, providers, organizations, notification_outbox, "
                           "notification_breaker_log RESTART IDENTITY")
        # Row-by-row FK checks would triple the insert time; re-adding the constraints validates them in one
        # set-based pass instead, so the data is still checked.
        for name in _APPOINTMENT_FKS:
            await conn.execute(f"ALTER TABLE appointments DROP CONSTRAINT IF EXISTS {name}")
        await conn.execute(
            "SELECT bookbench_generate($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            params.orgs, params.providers_per_org, params.contacts, params.appointments, params.seed,
            params.anchor, params.past_days, params.future_days, params.stride, params.key_secret,
        )
        for name, definition in _APPOINTMENT_FKS.items():
            await conn.execute(f"ALTER TABLE appointments ADD CONSTRAINT {name} {definition}")
        meta = {"fingerprint": params.fingerprint(), "params": params.public()}
        await conn.execute(
            "INSERT INTO bookbench_meta (key, value) VALUES ('dataset', $1::jsonb) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            json.dumps(meta),
        )
    await conn.execute("VACUUM ANALYZE organizations, providers, contacts, appointments")
    counts, sizes = await table_stats(conn)
    return SeedReport(False, time.perf_counter() - started, counts, sizes)
