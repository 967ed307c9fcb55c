"""pg_stat_statements read by db/statements.py on the embedded PostgreSQL: a statement of known duration, the labels
of the service's statements under a real booking load, the reasons when it cannot be read, and the embedded
server's settings on new and existing clusters."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import asyncpg
import httpx
import pytest

from bookbench.artifacts.db_evidence import StatementDelta
from bookbench.db import statements
from bookbench.db.embedded import EmbeddedPostgres, evidence_settings
from bookbench.pipeline.stack import ServiceProcess
from tests.budget import budget
from tests.conftest import SMALL, fetch, run_async, run_sql
from tests.service.test_service_api import auth, future

SLEEP_S = 0.05
SLEEPS = 10


async def _source_and_snapshot(conn: asyncpg.Connection, role: str | None = None
                               ) -> tuple[statements.Source, statements.Snapshot]:
    src = await statements.probe(conn, role)
    assert isinstance(src, statements.Source), src
    return src, await statements.snapshot(conn, src)


def test_a_statement_of_known_duration_shows_its_calls_and_time(new_db: Callable[[], str]) -> None:
    """SELECT pg_sleep(0.05) ten times between two snapshots: 10 calls and a mean of at least 50 ms (pg_sleep never
    wakes early); above it only by what a busy machine adds to a wake-up."""
    dsn = new_db()

    async def main() -> list[StatementDelta]:
        reader = await asyncpg.connect(dsn)
        other = await asyncpg.connect(dsn)
        try:
            src, before = await _source_and_snapshot(reader)
            for _ in range(SLEEPS):
                await other.execute(f"SELECT pg_sleep({SLEEP_S})")
            after = await statements.snapshot(reader, src)
            return statements.delta(before, after, await statements.texts(reader, src))
        finally:
            await reader.close()
            await other.close()

    found = [s for s in run_async(main()) if "pg_sleep" in s.query]
    assert len(found) == 1, found
    sleep = found[0]
    assert sleep.query == "SELECT pg_sleep($1)" and sleep.label == "other" and not sleep.own
    assert sleep.calls == SLEEPS and sleep.toplevel is True and sleep.rows == SLEEPS
    assert sleep.mean_exec_ms >= SLEEP_S * 1000 * 0.999, sleep
    assert sleep.mean_exec_ms <= SLEEP_S * 1000 + budget(20), sleep
    assert sleep.total_exec_ms == pytest.approx(sleep.mean_exec_ms * SLEEPS)
    assert sleep.wal_bytes == 0 and sleep.plans is not None  # PostgreSQL 18: both columns exist; planning is on


def test_the_service_statements_are_labelled_under_a_booking_load(api: ServiceProcess, small_db: str) -> None:
    """Real HTTP requests to the service: each kind of request shows under its label, and the booking function's
    inner statements (conflict check, advisory lock, INSERT) are counted once per booking, below top level."""
    providers, contacts = SMALL.providers_of(1), SMALL.contacts_of(1)
    days = itertools.count(30)
    bookings = 6

    async def load() -> None:
        async with httpx.AsyncClient(base_url=api.base_url, headers=auth(1), timeout=budget(30)) as client:
            for i in range(bookings):
                resp = await client.post("/api/v1/appointments", json={
                    "contactId": contacts[i], "providerId": providers[i % len(providers)],
                    "start": future(days=next(days)), "durationMinutes": 30})
                assert resp.status_code in (200, 201), resp.text
            day = future(days=next(days))[:10]
            assert (await client.get(f"/api/v1/providers/{providers[0]}/availability",
                                     params={"date": day})).status_code == 200
            assert (await client.get(f"/api/v1/contacts/{contacts[0]}/appointments/upcoming")).status_code == 200
            assert (await client.post("/api/v1/appointments/1/cancel")).status_code in (200, 404, 409)

    async def main() -> list[StatementDelta]:
        reader = await asyncpg.connect(small_db)
        try:
            src, before = await _source_and_snapshot(reader)
            await load()
            after = await statements.snapshot(reader, src)
            return statements.delta(before, after, await statements.texts(reader, src))
        finally:
            await reader.close()

    found = {s.label: s for s in run_async(main())}
    for name in ("booking function", "conflict check", "advisory lock", "booking insert", "booking outbox insert",
                 "availability", "upcoming lookup", "cancel"):
        assert name in found and found[name].own, (name, sorted(found))
    for name in ("conflict check", "advisory lock", "booking insert"):
        assert found[name].calls == bookings and found[name].toplevel is False, found[name]
    assert found["booking function"].calls == bookings and found["booking function"].toplevel is True
    # a booking writes: the function's WAL includes its INSERT's
    booking, insert = found["booking function"], found["booking insert"]
    assert insert.wal_bytes is not None and booking.wal_bytes is not None and 0 < insert.wal_bytes <= booking.wal_bytes
    assert "appointment_conflicts" in found["conflict check"].query
    assert all(s.label == "other" or s.own or s.label.startswith("bookbench: ") for s in found.values())


def test_no_extension_is_a_reason_not_an_error(new_db: Callable[[], str]) -> None:
    dsn = new_db()
    fetch(dsn, "DROP EXTENSION pg_stat_statements")
    found = run_sql(dsn, statements.probe)
    assert isinstance(found, str)
    assert found.startswith("not measured: the pg_stat_statements extension is not installed in database t_"), found


def test_a_role_without_pg_read_all_stats_reads_only_its_own_statements(new_db: Callable[[], str]) -> None:
    """Another role's statements need pg_read_all_stats: without it, a reason; when the service connects as this
    same role, its own statements are read (and only those)."""
    dsn = new_db()
    role = "bb_plain_" + uuid.uuid4().hex[:8]
    fetch(dsn, f"CREATE ROLE {role} LOGIN")
    plain = dsn.replace("postgres@", f"{role}@")
    try:
        refused = run_sql(plain, lambda c: statements.probe(c, None))
        assert refused == (f"not measured: role {role} may not read other roles' statements in pg_stat_statements "
                           "(grant it pg_read_all_stats)")

        # statements of their own shape: a column alias is not part of a statement's identity, so "SELECT 1 AS x"
        # would be counted under whichever "SELECT $1" came first
        mine = "SELECT count(*) FROM pg_class WHERE relname = $1"
        theirs = "SELECT count(*) FROM pg_am WHERE amname = $1"

        async def own() -> tuple[list[str], list[str]]:
            conn = await asyncpg.connect(plain)
            su = await asyncpg.connect(dsn)
            try:
                src, before = await _source_and_snapshot(conn, role)
                all_src, all_before = await _source_and_snapshot(su)
                assert src.userid is not None and "this role's statements only" in src.describe()
                assert all_src.userid is None
                await conn.fetch(mine, "x")
                await su.fetch(theirs, "y")
                after, all_after = await statements.snapshot(conn, src), await statements.snapshot(su, all_src)
                return ([s.query for s in statements.delta(before, after, await statements.texts(conn, src))],
                        [s.query for s in statements.delta(all_before, all_after,
                                                           await statements.texts(su, all_src))])
            finally:
                await conn.close()
                await su.close()

        seen, seen_by_all = run_async(own())
        assert mine in seen and theirs not in seen, seen
        assert mine in seen_by_all and theirs in seen_by_all  # the superuser reads both: the difference is the role
    finally:
        fetch(dsn, f"DROP OWNED BY {role}")
        fetch(dsn, f"DROP ROLE {role}")


def test_deltas_count_from_zero_after_an_eviction_and_labels_stay_unique() -> None:
    key = (7, True, 10)
    zero = statements.Counters(0, 0.0, 0, 0, 0, 0, 0, 0, None, None, None, None)

    def counters(calls: int, ms: float, since: float) -> statements.Counters:
        return statements.Counters(calls, ms, calls, 0, 0, 0, 0, 0, None, None, None, since)

    # evicted and made again in between (stats_since moved on): the new entry's counters are all the window's
    before = statements.Snapshot(1.0, {key: counters(50, 500.0, 100.0)})
    after = statements.Snapshot(2.0, {key: counters(3, 30.0, 101.5)})
    (only,) = statements.delta(before, after, {key: "SELECT 1"})
    assert only.calls == 3 and only.total_exec_ms == 30.0 and only.wal_bytes is None and only.plans is None
    # the same statement at top level and inside a function: one label each
    a, b = (7, True, 10), (7, False, 10)
    text = "SELECT $11 FROM appointment_conflicts(p_org_id, p_provider_id, p_start, v_end)"
    both = statements.delta(statements.Snapshot(1.0, {a: zero}),
                            statements.Snapshot(2.0, {a: counters(2, 4.0, 0.0), b: counters(5, 5.0, 0.0)}),
                            {a: text, b: text})
    assert [(s.label, s.calls) for s in both] == [("conflict check", 5), ("conflict check #2", 2)]


def test_labels_of_statements_bookbench_does_not_own() -> None:
    assert statements.label("CREATE OR REPLACE FUNCTION book_appointment_atomic() ... appointment_conflicts(") == (
        "other", False)
    assert statements.label("SELECT $1::text, $2::bigint") == ("booking refusal", True)
    assert statements.label('SELECT $2 FROM ONLY "public"."contacts" x WHERE "id" OPERATOR(pg_catalog.=) $1 '
                            "FOR KEY SHARE OF x") == ("foreign key check (contacts)", True)


def _show(dsn: str, *names: str) -> dict[str, str]:
    rows = fetch(dsn, "SELECT name, setting FROM pg_settings WHERE name = ANY($1::text[])", list(names))
    return {r["name"]: r["setting"] for r in rows}


def _evidence_configured(dsn: str, threshold: str = "200") -> None:
    """The settings as a new session sees them; a reload reaches the postmaster a moment after pg_reload_conf()
    returns, so a session may still start with the old ones until then."""
    deadline = time.monotonic() + budget(5)
    while _show(dsn, "auto_explain.log_min_duration") != {"auto_explain.log_min_duration": threshold} \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    got = _show(dsn, "pg_stat_statements.track", "pg_stat_statements.track_planning", "session_preload_libraries",
                "auto_explain.log_min_duration", "auto_explain.log_format", "auto_explain.log_nested_statements",
                "auto_explain.log_analyze", "auto_explain.log_parameter_max_length")
    assert got == {"pg_stat_statements.track": "all", "pg_stat_statements.track_planning": "on",
                   "session_preload_libraries": "auto_explain", "auto_explain.log_min_duration": threshold,
                   "auto_explain.log_format": "json", "auto_explain.log_nested_statements": "on",
                   "auto_explain.log_analyze": "off", "auto_explain.log_parameter_max_length": "0"}, got


def test_an_existing_cluster_gets_the_evidence_settings_stopped_or_running(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cluster made before issue 27 lacks the settings: a stopped one gets them in postgresql.auto.conf before it
    starts; a running one by ALTER SYSTEM and a reload (no restart: the postmaster keeps its pid)."""
    monkeypatch.delenv("BOOKBENCH_AUTO_EXPLAIN_MS", raising=False)
    pg = EmbeddedPostgres(tmp_path / "pg")
    try:
        pg.start()
        dsn = pg.create_database("ev")
        _evidence_configured(dsn)
        assert fetch(dsn, "SELECT extname FROM pg_extension WHERE extname = 'pg_stat_statements'")
        # stopped: a pre-issue-27 auto.conf (no evidence settings), then started again
        pg.stop()
        conf = pg.pgdata / "postgresql.auto.conf"
        old = [ln for ln in conf.read_text().splitlines() if ln.partition("=")[0].strip() not in evidence_settings()]
        conf.write_text("\n".join(old) + "\n")
        dsn = pg.start().dsn("ev")  # not create_database(): its start() would apply them as to a running server
        _evidence_configured(dsn)
        # running: the settings reset while it runs, then a command starts it (it is already running)
        pid = pg.postmaster_pid()
        for key in evidence_settings():
            fetch(dsn, f"ALTER SYSTEM RESET {key}")
        fetch(dsn, "SELECT pg_reload_conf()")
        assert _show(dsn, "pg_stat_statements.track")["pg_stat_statements.track"] == "top"
        pg.start()
        _evidence_configured(dsn)
        assert pg.postmaster_pid() == pid
        # a threshold asked for by the environment replaces the one written before
        monkeypatch.setenv("BOOKBENCH_AUTO_EXPLAIN_MS", "7")
        pg.start()
        _evidence_configured(dsn, threshold="7")
    finally:
        pg.destroy()


def test_the_snapshot_reads_no_other_database(new_db: Callable[[], str]) -> None:
    mine, theirs = new_db(), new_db()
    elsewhere = "SELECT count(*) FROM pg_tablespace WHERE spcname = $1"

    async def main() -> tuple[list[str], list[str]]:
        conn = await asyncpg.connect(mine)
        other = await asyncpg.connect(theirs)
        try:
            (src, before), (other_src, other_before) = await _source_and_snapshot(conn), await _source_and_snapshot(
                other)
            await other.fetch(elsewhere, "x")
            after, other_after = await statements.snapshot(conn, src), await statements.snapshot(other, other_src)
            return ([s.query for s in statements.delta(before, after, await statements.texts(conn, src))],
                    [s.query for s in statements.delta(other_before, other_after,
                                                       await statements.texts(other, other_src))])
        finally:
            await conn.close()
            await other.close()

    here, there = run_async(main())
    assert elsewhere in there and elsewhere not in here
