"""Database-side checks: the seed's preflight (one booking function, advisory lock, READ COMMITTED only and as the
effective default, tenant isolation) and the double-booking audit over the whole appointments table. Both read
the database the user named (CheckTarget.database_dsn) and say which."""

from __future__ import annotations

import asyncpg

from bookbench.checks.base import CheckResult, CheckTarget, Timer, not_applicable
from bookbench.checks.functional import isolation
from bookbench.config.dsn import mask_dsn
from bookbench.db import audit
from bookbench.db.conn import connect

BOOKING_FUNCTION = "book_appointment_atomic"


def _needs_dsn(suite: str) -> list[CheckResult]:
    return [CheckResult(suite, "database access", False,
                        "this check reads the database: pass --dsn (or DATABASE_URL) for a remote deployment")]


async def _function_checks(conn: asyncpg.Connection) -> list[CheckResult]:
    results = []
    names = [r["proname"] for r in await conn.fetch(
        "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND (p.proname LIKE 'book\\_appointment%' OR p.proname LIKE '%\\_v2')")]
    exact = names.count(BOOKING_FUNCTION)
    v2 = [n for n in names if n.endswith("_v2")]
    results.append(CheckResult("preflight", "exactly one booking function, no *_v2",
                               exact == 1 and not v2,
                               f"{exact} x {BOOKING_FUNCTION}; _v2 functions: {', '.join(v2) or 'none'}; "
                               f"booking-like functions: {', '.join(sorted(set(names))) or 'none'}"))
    source = await conn.fetchval(
        "SELECT string_agg(pg_get_functiondef(p.oid), E'\\n') FROM pg_proc p WHERE p.proname = $1",
        BOOKING_FUNCTION) or ""
    results.append(CheckResult("preflight", "booking function takes pg_advisory_xact_lock",
                               "pg_advisory_xact_lock" in source,
                               "found in its definition" if "pg_advisory_xact_lock" in source
                               else "pg_advisory_xact_lock not in the function definition"))
    results.append(await _refuses_repeatable_read(conn))
    results.append(await _default_isolation(conn))
    return results


async def _default_isolation(conn: asyncpg.Connection) -> CheckResult:
    """The isolation a new session of this role on this database gets, all defaults applied (server, database,
    role): what a client that sets nothing itself runs the booking function under."""
    level = str(await conn.fetchval("SHOW default_transaction_isolation"))
    ok = level == "read committed"
    detail = (f"default_transaction_isolation = '{level}'" if ok else
              f"default_transaction_isolation = '{level}': the booking function refuses to run under it; the "
              "bookbench service sets READ COMMITTED on its own connections, other clients (and a pooler that "
              "drops session settings) would fail every booking. Fix: ALTER DATABASE ... SET "
              "default_transaction_isolation = 'read committed'")
    return CheckResult("preflight", "database default isolation is READ COMMITTED", ok, detail)


async def _refuses_repeatable_read(conn: asyncpg.Connection) -> CheckResult:
    """Call the function under REPEATABLE READ with arguments that would otherwise be valid; always rolled back."""
    row = await conn.fetchrow(
        "SELECT c.org_id, c.id AS contact_id, p.id AS provider_id FROM contacts c "
        "JOIN providers p ON p.org_id = c.org_id ORDER BY c.id LIMIT 1")
    if row is None:
        return CheckResult("preflight", "refuses REPEATABLE READ", False, "no contact/provider to test with")
    tx = conn.transaction(isolation="repeatable_read")
    await tx.start()
    try:
        await conn.fetchrow(f"SELECT * FROM {BOOKING_FUNCTION}($1, $2, $3, now() + interval '900 days', 30)",
                            row["org_id"], row["contact_id"], row["provider_id"])
        outcome = CheckResult("preflight", "refuses REPEATABLE READ", False,
                              "the function ran under REPEATABLE READ (it can double-book there)")
    except asyncpg.PostgresError as exc:
        ok = "READ COMMITTED" in str(exc)
        outcome = CheckResult("preflight", "refuses REPEATABLE READ", ok, f"refused: {exc}")
    finally:
        await tx.rollback()
    return outcome


def _named(dsn: str, detail: str) -> str:
    return f"{detail} (database {mask_dsn(dsn)})"


async def run_preflight(target: CheckTarget) -> list[CheckResult]:
    dsn = target.database_dsn or target.dsn
    if dsn is None:
        return _needs_dsn("preflight")
    conn = await connect(dsn)
    try:
        with Timer() as t:
            results = await _function_checks(conn)
        results[0].seconds = t.seconds
    finally:
        await conn.close()
    for r in results:
        r.detail = _named(dsn, r.detail)
    tenant = await isolation(target, "preflight", clinics=2)
    tenant.name = "tenant isolation holds"
    return [*results, tenant]


async def count_overlaps(dsn: str, columns: dict[str, str] | None = None) -> tuple[int, int]:
    """(overlapping pairs, non-cancelled appointments checked); `columns`: where a profile keeps appointments."""
    conn = await connect(dsn)
    try:
        found = await audit.audit(conn, columns) if columns is not None else await audit.audit(conn)
    finally:
        await conn.close()
    return int(found["overlaps"]), int(found["checked"])


async def run_audit(target: CheckTarget) -> list[CheckResult]:
    columns = None
    if not target.reference:
        spec = target.bound().profile.audit
        if spec is None:
            # not measurable, said so: never a silent pass
            return [not_applicable("audit", target.profile_name, "the profile has no audit block (the table and "
                                   "columns that hold its appointments), so double-booking is not measurable")]
        columns = spec.model_dump(exclude={"answer_id_regex"})
    dsn = target.database_dsn or target.dsn
    if dsn is None:
        return _needs_dsn("audit")
    with Timer() as t:
        overlaps, checked = await count_overlaps(dsn, columns)
    return [CheckResult("audit", "no double-booking in the database", overlaps == 0,
                        _named(dsn, f"{overlaps} overlapping appointments among {checked} non-cancelled ones"),
                        t.seconds)]
