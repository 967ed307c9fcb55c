"""The conflict check, written once in the schema (appointment_conflicts): the booking function and the query
evidence run that one definition, inlined by the planner, so the plans they show are the plan of its SELECT."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

from bookbench.db import evidence, indexes
from bookbench.db.conn import SQL_DIR, run_with
from bookbench.db.schema import apply_schema
from tests.conftest import SMALL, seeded

pytestmark = pytest.mark.integration

ROOT = Path(evidence.__file__).parents[1]
# a line only the conflict check has: its overlap test on the stored appointment's end
OVERLAP = "make_interval(mins => a.duration_minutes) > p_start"


def test_the_conflict_check_is_written_once() -> None:
    holders = [p.relative_to(ROOT).as_posix() for p in sorted(ROOT.rglob("*")) if p.suffix in (".sql", ".py")
               and OVERLAP in p.read_text()]
    assert holders == ["sql/schema/002_booking.sql"]
    booking = (SQL_DIR / "schema" / "002_booking.sql").read_text()
    assert booking.count(OVERLAP) == 1
    assert "PERFORM 1 FROM appointment_conflicts(p_org_id, p_provider_id, p_start, v_end);" in booking
    assert "appointment_conflicts($1, $2, $3, $4)" in evidence.CONFLICT_CHECK


async def _inlining_conditions(conn: asyncpg.Connection) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT l.lanname AS lang, provolatile::text, proisstrict, proretset, proparallel::text, prosecdef, proconfig "
        "FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang WHERE p.oid = to_regprocedure($1)",
        evidence.CONFLICT_FUNCTION)


def test_the_function_keeps_what_lets_the_planner_inline_it(small_db: str) -> None:
    """PostgreSQL inlines a function in FROM only when it is LANGUAGE sql, set-returning, not volatile, not
    strict, not SECURITY DEFINER and without SET options; PARALLEL SAFE keeps the parallel scan the inline
    statement had, since parallel safety is judged before inlining."""
    row = run_with(small_db, _inlining_conditions)
    assert row is not None
    assert dict(row) == {"lang": "sql", "provolatile": "s", "proisstrict": False, "proretset": True,
                         "proparallel": "s", "prosecdef": False, "proconfig": None}


async def _nested_plans(conn: asyncpg.Connection) -> list[str]:
    """The plans of the statements the booking function runs, as auto_explain reports them."""
    notes: list[str] = []
    conn.add_log_listener(lambda _c, msg: notes.append(str(msg.message)))
    await conn.execute("LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0; "
                       "SET auto_explain.log_nested_statements = on; SET auto_explain.log_level = notice; "
                       "SET client_min_messages = notice; SET enable_seqscan = off")
    provider, contact = SMALL.providers_of(1)[0], SMALL.contacts_of(1)[0]
    start = dt.datetime.combine(SMALL.anchor + dt.timedelta(days=SMALL.future_days + 40), dt.time(9), tzinfo=dt.UTC)
    tx = conn.transaction()
    await tx.start()
    try:
        await conn.fetchrow("SELECT * FROM book_appointment_atomic($1, $2, $3, $4, 30)", 1, contact, provider, start)
    finally:
        await tx.rollback()  # the booking was only there to be planned
    return [n for n in notes if "appointment_conflicts(" in n]


def test_booking_and_evidence_show_the_inlined_check_using_the_index(new_db: Callable[[], str],
                                                                      tmp_path: Path) -> None:
    dsn = seeded(new_db())
    run_with(dsn, functools.partial(indexes.apply, set_name="recommended"))
    nested = run_with(dsn, _nested_plans)
    assert nested, "auto_explain reported no plan for the booking's conflict check"
    assert all("Function Scan" not in n and "idx_appointments_provider_slot" in n for n in nested), nested

    async def with_no_seqscan(conn: asyncpg.Connection) -> dict[str, object]:
        await conn.execute("SET enable_seqscan = off")  # at 3000 rows a seq scan may still be cheaper
        return await evidence.explain_all(conn, SMALL, tmp_path, writes_allowed=False)

    check = run_with(dsn, with_no_seqscan)["conflict_check"]
    assert isinstance(check, dict)
    assert "Function Scan" not in check["nodes"]
    assert check["indexes"] == ["idx_appointments_provider_slot"]
    assert check["prepared"]["indexes"] == ["idx_appointments_provider_slot"]


def test_a_schema_without_the_function_is_explained_without_the_check(new_db: Callable[[], str],
                                                                      tmp_path: Path) -> None:
    """A deployment's schema from before the function: bookbench never changes it, and EXPLAINs the rest."""
    dsn = seeded(new_db())
    run_with(dsn, lambda conn: conn.execute(f"DROP FUNCTION {evidence.CONFLICT_FUNCTION}"))
    plans = run_with(dsn, lambda conn: evidence.explain_all(conn, SMALL, tmp_path, writes_allowed=False))
    assert sorted(plans) == ["availability", "upcoming"]
    # and applying the schema again, as on any existing database, brings it back
    run_with(dsn, apply_schema)
    assert run_with(dsn, _inlining_conditions) is not None
