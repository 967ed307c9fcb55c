"""The wait-event sampler (bookbench/db/waits.py) on real backends: each state it classifies, produced for real and
held while the sampler samples; whose backends it counts; and the reasons it gives when it cannot measure."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import asyncpg
import pytest

from bookbench.artifacts.db_evidence import WAIT_CATEGORIES, WaitShares
from bookbench.db.conn import run_with
from bookbench.db.embedded import EmbeddedPostgres, free_port
from bookbench.db.waits import SAMPLER_APPLICATION_NAME, SERVICE_APPLICATION_NAME, WaitSampler, classify
from tests.budget import budget
from tests.conftest import run_async

pytestmark = pytest.mark.integration

HZ = 20.0
INSTANTS = 8  # instants sampled per held state: enough that an exact count is not luck


@pytest.fixture(scope="module")
def db(new_db: Callable[[], str]) -> str:
    dsn = new_db()

    async def setup(conn: asyncpg.Connection) -> None:
        await conn.execute("CREATE TABLE rows_to_lock (id int PRIMARY KEY, v int); INSERT INTO rows_to_lock "
                           "VALUES (1, 0)")

    run_with(dsn, setup)
    return dsn


async def service_conn(dsn: str, app: str = SERVICE_APPLICATION_NAME) -> asyncpg.Connection:
    return await asyncpg.connect(dsn, server_settings={"application_name": app})


async def until(check: Callable[[], Awaitable[bool]], what: str, idle_s: float = 5.0) -> None:
    deadline = time.monotonic() + budget(idle_s)
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


@asynccontextmanager
async def sampling(dsn: str) -> AsyncIterator[WaitSampler]:
    with WaitSampler(dsn, SERVICE_APPLICATION_NAME, hz=HZ) as sampler:
        assert await asyncio.to_thread(sampler.wait_started, budget(10)), sampler.not_measured
        yield sampler


async def observe(sampler: WaitSampler) -> WaitShares:
    """The shares of the next INSTANTS instants from now. The caller established the state before and keeps it
    until this returns; the window is narrowed by half the slowest sample's round trip on each side, the most an
    instant's timestamp can be off the moment pg_stat_activity was read."""
    began = time.time()

    def narrowed() -> WaitShares | None:
        # the margin can grow while we wait (one slow sample), so the window is judged as it will be returned
        margin = sampler.query_ms_max / 2000
        return sampler.shares(began + margin, time.time() - margin)

    async def enough() -> bool:
        shares = narrowed()
        return shares is not None and shares.instants >= INSTANTS

    await until(enough, f"{INSTANTS} sampling instants")
    shares = narrowed()
    assert shares is not None and shares.instants >= INSTANTS, shares
    return shares


async def state_of(observer: asyncpg.Connection, pid: int) -> tuple[str | None, str | None, str | None]:
    row = await observer.fetchrow("SELECT state, wait_event_type, wait_event FROM pg_stat_activity WHERE pid = $1",
                                  pid)
    assert row is not None
    return row["state"], row["wait_event_type"], row["wait_event"]


def only(shares: WaitShares, category: str, backends: int = 1) -> None:
    """Every instant saw exactly `backends` backends, all in `category`: the state was held throughout."""
    expected = {name: 0 for name in WAIT_CATEGORIES} | {category: backends * shares.instants}
    assert shares.counts == expected, shares
    assert shares.shares[category] == 1.0 and shares.busy_backends_mean == backends


def test_classify_every_state_pg_stat_activity_shows() -> None:
    assert classify("idle", "Client", "ClientRead") is None
    assert classify(None, None, None) is None
    assert classify("active", None, None) == "CPU"
    assert classify("active", "Lock", "advisory") == "Lock:advisory"
    assert classify("active", "Lock", "transactionid") == "Lock:other"
    assert classify("active", "Lock", "tuple") == "Lock:other"
    assert classify("active", "LWLock", "WALWrite") == "LWLock"
    assert classify("active", "IO", "DataFileRead") == "IO:DataFileRead"
    assert classify("active", "IO", "WalSync") == "IO:other"
    assert classify("active", "Client", "ClientRead") == "Client:ClientRead"
    assert classify("active", "Client", "ClientWrite") == "other"
    assert classify("active", "Timeout", "PgSleep") == "other"
    assert classify("idle in transaction", "Client", "ClientRead") == "idle in transaction"
    assert classify("idle in transaction (aborted)", "Client", "ClientRead") == "idle in transaction"
    assert classify("fastpath function call", None, None) == "other"


def test_idle_and_idle_in_transaction(db: str) -> None:
    async def body() -> None:
        observer = await asyncpg.connect(db)
        conn, aborted = await service_conn(db), await service_conn(db)
        try:
            async with sampling(db) as sampler:
                idle = await observe(sampler)  # two idle service backends: no observation at all
                assert idle.observations == 0 and idle.busy_backends_mean == 0, idle
                assert set(idle.shares.values()) == {0.0}

                await conn.execute("BEGIN; SELECT 1")
                assert (await state_of(observer, conn.get_server_pid()))[0] == "idle in transaction"
                only(await observe(sampler), "idle in transaction")

                await aborted.execute("BEGIN")
                with pytest.raises(asyncpg.DivisionByZeroError):
                    await aborted.execute("SELECT 1/0")
                assert (await state_of(observer, aborted.get_server_pid()))[0] == "idle in transaction (aborted)"
                only(await observe(sampler), "idle in transaction", backends=2)
        finally:
            for c in (observer, conn, aborted):
                await c.close()

    run_async(body())


async def _held_while_waiting(db: str, hold: str, wait: str, expected_wait: tuple[str, set[str]],
                              category: str) -> None:
    """`hold` on a connection of another application, `wait` (blocked by it) on a service connection: the
    sampler sees one backend in `category` while pg_stat_activity shows the waiter on `expected_wait`."""
    observer, holder, waiter = await asyncpg.connect(db), await service_conn(db, "test-holder"), await service_conn(db)
    try:
        async with sampling(db) as sampler:
            await holder.execute(hold)
            blocked = asyncio.create_task(waiter.execute(wait))
            pid = waiter.get_server_pid()

            async def waiting() -> bool:
                return (await state_of(observer, pid))[1] == expected_wait[0]

            await until(waiting, f"the service backend to wait on {expected_wait}")
            state, kind, event = await state_of(observer, pid)
            assert state == "active" and kind == expected_wait[0] and event in expected_wait[1], (state, kind, event)
            shares = await observe(sampler)
            only(shares, category)  # the holder is not the service's: not counted
            # the raw event behind the category, counted per whole second (so at least the instants inside it)
            assert set(shares.events) <= {f"{expected_wait[0]}:{e}" for e in expected_wait[1]}, shares.events
            assert sum(shares.events.values()) >= shares.instants, shares
            await holder.execute("ROLLBACK; SELECT pg_advisory_unlock_all()")
            await asyncio.wait_for(blocked, budget(5))
    finally:
        for c in (observer, holder, waiter):
            await c.close()


def test_a_row_lock_waiter_is_lock_other(db: str) -> None:
    # PostgreSQL shows the second updater of a row waiting on the first's transaction id ("transactionid"; a third
    # would wait on "tuple"): both are Lock:other
    run_async(_held_while_waiting(db, "BEGIN; UPDATE rows_to_lock SET v = v + 1 WHERE id = 1",
                                  "UPDATE rows_to_lock SET v = v + 1 WHERE id = 1",
                                  ("Lock", {"transactionid", "tuple"}), "Lock:other"))


def test_an_advisory_lock_waiter_is_lock_advisory(db: str) -> None:
    # the booking function's own call: a transaction-scoped lock on two int4 keys, blocked by a session lock
    run_async(_held_while_waiting(db, "BEGIN; SELECT pg_advisory_lock(7, 8)",
                                  "BEGIN; SELECT pg_advisory_xact_lock(7, 8); COMMIT",
                                  ("Lock", {"advisory"}), "Lock:advisory"))


@pytest.mark.parametrize(("query", "wait", "category"), [
    # PostgreSQL instruments pg_sleep as Timeout:PgSleep: not CPU, and not a lock; "other"
    ("SELECT pg_sleep(60)", ("Timeout", "PgSleep"), "other"),
    # a plpgsql loop: active, no wait event at any instant (it never touches a buffer, a lock or the client)
    ("DO $$ DECLARE i bigint := 0; BEGIN WHILE i >= 0 LOOP i := i + 1; END LOOP; END $$", (None, None), "CPU"),
], ids=["pg_sleep", "cpu"])
def test_an_active_backend(db: str, query: str, wait: tuple[str | None, str | None], category: str) -> None:
    async def body() -> None:
        observer, busy = await asyncpg.connect(db), await service_conn(db)
        try:
            async with sampling(db) as sampler:
                running = asyncio.create_task(busy.execute(query))
                pid = busy.get_server_pid()

                async def started() -> bool:
                    # active comes first, the wait event (pg_sleep's) once the statement is parsed and planned
                    return (await state_of(observer, pid)) == ("active", *wait)

                await until(started, f"the query to run, active on {wait}")
                only(await observe(sampler), category)
                assert await observer.fetchval("SELECT pg_cancel_backend($1)", pid)
                with pytest.raises(asyncpg.QueryCanceledError):
                    await asyncio.wait_for(running, budget(5))
        finally:
            await observer.close()
            await busy.close()

    run_async(body())


def test_only_the_service_backends_of_this_database(db: str, new_db: Callable[[], str]) -> None:
    """A backend of another application, and one of the service's application in another database, are not the
    run's service; the sampler's own connection is not either."""
    elsewhere = new_db()

    async def body() -> None:
        other_app, other_db = await service_conn(db, "someone-else"), await service_conn(elsewhere)
        mine = await service_conn(db)
        try:
            for c in (other_app, other_db):
                await c.execute("BEGIN; SELECT 1")
            async with sampling(db) as sampler:
                assert (await observe(sampler)).observations == 0
                await mine.execute("BEGIN; SELECT 1")  # the control: the same state, counted when it is the service's
                only(await observe(sampler), "idle in transaction")
                # the sampler's own backend was there all along, active while it sampled: never counted
                sampler_apps = await mine.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", SAMPLER_APPLICATION_NAME)
                assert sampler_apps == 1
        finally:
            for c in (other_app, other_db, mine):
                await c.close()

    run_async(body())


def test_a_window_without_instants_has_no_shares_and_says_why(db: str) -> None:
    async def body() -> tuple[WaitSampler, float, float]:
        idle = await service_conn(db)  # the service is there, idle: its windows are measured (and empty)
        try:
            async with sampling(db) as sampler:
                began = time.time()
                await observe(sampler)
            stopped = time.time()
            await asyncio.sleep(3 / HZ)
        finally:
            await idle.close()
        return sampler, began, stopped

    sampler, began, stopped = run_async(body())
    assert sampler.not_measured is None and sampler.ended is None
    assert sampler.shares(stopped + 1, stopped + 2) is None
    assert sampler.shares(0, began) is not None  # the instants between the first and `began`
    # a window that runs on after the sampler stopped: its shares name the gap
    late = sampler.shares(began, stopped + 5)
    assert late is not None and late.note.startswith("sampling stopped"), late
    assert sampler.query_ms_mean is not None and 0 < sampler.query_ms_mean <= sampler.query_ms_max


def test_an_error_ends_sampling_without_raising(db: str) -> None:
    """The sampler's connection terminated under it (a database restart does the same): sampling ends, the
    instants before stay, and a window reaching past the end names the reason."""

    async def body() -> tuple[WaitSampler, float, float]:
        observer, idle = await asyncpg.connect(db), await service_conn(db)
        try:
            async with sampling(db) as sampler:
                began = time.time()
                await observe(sampler)
                killed = await observer.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
                    SAMPLER_APPLICATION_NAME)
                assert killed == 1

                async def ended() -> bool:
                    return sampler.ended is not None

                await until(ended, "the sampler to notice")
                return sampler, began, time.time()
        finally:
            await observer.close()
            await idle.close()

    sampler, began, after = run_async(body())
    assert sampler.not_measured is None
    assert sampler.ended is not None and "connection was closed" in sampler.ended, sampler.ended
    shares = sampler.shares(began, after)
    assert shares is not None and shares.instants >= INSTANTS
    assert shares.note.startswith("sampling ended") and sampler.ended is not None and sampler.ended in shares.note


def test_a_refused_connection_is_not_measured_with_the_password_masked() -> None:
    dsn = f"postgresql://someone:s3cret-pw@127.0.0.1:{free_port()}/nowhere"
    with WaitSampler(dsn, hz=HZ) as sampler:
        assert not sampler.wait_started(budget(15))
    assert sampler.not_measured is not None and sampler.not_measured.startswith("not measured: "), sampler.not_measured
    assert "could not connect" in sampler.not_measured and "s3cret-pw" not in sampler.not_measured
    assert sampler.shares(0, time.time()) is None and sampler.reason(0, time.time()) == sampler.not_measured


def _as_role(dsn: str, role: str) -> str:
    scheme, rest = dsn.split("://", 1)
    return f"{scheme}://{role}@{rest.split('@', 1)[1]}"


def test_a_role_that_cannot_see_the_service_backends_is_not_measured(db: str, pg: EmbeddedPostgres) -> None:
    """A plain role sees other roles' backends in pg_stat_activity with their application_name but a NULL state and
    wait event and '<insufficient privilege>' as query: the sampler says so instead of counting them as idle.
    Granted pg_read_all_stats, the same role measures; a role sees its own backends without it."""
    role = "plain_" + uuid.uuid4().hex[:8]

    async def body() -> None:
        admin = await asyncpg.connect(db)
        await admin.execute(f"CREATE ROLE {role} LOGIN")
        plain_dsn = _as_role(db, role)
        service = await service_conn(db)  # the service's backend, of the superuser role
        try:
            await service.execute("BEGIN; SELECT 1")
            plain = await asyncpg.connect(plain_dsn)
            try:
                seen = await plain.fetchrow(
                    "SELECT state, wait_event_type, query, application_name FROM pg_stat_activity WHERE pid = $1",
                    service.get_server_pid())
            finally:
                await plain.close()
            assert seen is not None and dict(seen) == {"state": None, "wait_event_type": None,
                                                       "query": "<insufficient privilege>",
                                                       "application_name": SERVICE_APPLICATION_NAME}
            with WaitSampler(plain_dsn, hz=HZ) as refused:
                assert not await asyncio.to_thread(refused.wait_started, budget(10))
            assert refused.not_measured is not None and "pg_read_all_stats" in refused.not_measured, \
                refused.not_measured
            assert refused.not_measured.startswith(f"not measured: role {role} cannot see")

            # its own backends: visible without any grant (the service connecting as the sampler's role); the
            # superuser's backend gone, since a hidden backend refuses sampling whatever its state
            await service.close()
            own = await service_conn(plain_dsn)
            try:
                await own.execute("BEGIN; SELECT 1")
                async with sampling(plain_dsn) as sampler:
                    only(await observe(sampler), "idle in transaction")
            finally:
                await own.close()

            service = await service_conn(db)
            await service.execute("BEGIN; SELECT 1")
            await admin.execute(f"GRANT pg_read_all_stats TO {role}")
            async with sampling(plain_dsn) as sampler:
                only(await observe(sampler), "idle in transaction")
        finally:
            await service.close()
            await admin.execute(f"DROP ROLE {role}")
            await admin.close()

    run_async(body())


def test_a_target_whose_connections_are_not_named_is_not_measured(db: str) -> None:
    """No connection with the service's application_name at all (a foreign service, with --dsn): not "0 % of
    everything" but not measured, naming the application_name the sampler looked for."""
    async def body() -> tuple[WaitSampler, float, float]:
        foreign = await service_conn(db, "their-api")
        try:
            await foreign.execute("BEGIN; SELECT 1")  # busy, but not recognisable as the service
            async with sampling(db) as sampler:
                began, before = time.time(), sampler.instants
                # instants inside the window: a sampler that ran ahead while this test waited for the CPU does not
                # count (they fall before `began`)
                while sampler.instants < before + INSTANTS:
                    await asyncio.sleep(1 / HZ)
                ended = time.time()
        finally:
            await foreign.close()
        return sampler, began, ended

    sampler, began, ended = run_async(body())
    assert sampler.shares(began, ended) is None
    why = sampler.reason(began, ended)
    assert why is not None and why.startswith("not measured: no connection named 'bookbench-service'"), why
