"""The database restarting under load: every request gets a 2xx, a 4xx or a 503, never a 500, the service logs no
traceback, and it answers again once the database is back. Plus what db.acquired() makes of a lost connection
and of a bug, on a real database."""

from __future__ import annotations

import asyncio
import collections
import itertools
import random
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
import httpx
import pytest

from bookbench.db.embedded import EmbeddedPostgres
from target_service.db import DatabaseUnavailable, acquired, open_pool
from tests.conftest import SMALL, run_async, service_on_own_cluster
from tests.service.test_service_api import auth, future

pytestmark = pytest.mark.integration

WORKERS = 24  # more than the service's pool (20), so that requests queue for connections as the database goes
TERMINATIONS = 6
RESTARTS = 2
BACK_WITHIN_S = 20.0
OK = "ok"  # the outcome of a request that got an acceptable answer


def restart(pg: EmbeddedPostgres) -> None:
    """A fast-mode restart on the same port: pg_ctl reuses the running server's options. (stop() then start()
    would pick a new free port, and the service's DSN names the old one.)"""
    pg._run(["pg_ctl", "-D", str(pg.pgdata), "-l", str(pg.log_file), "-w", "-t", "60", "-m", "fast", "restart"])


async def terminate_backends(dsn: str, condition: str, *args: object) -> int:
    """What a failover or an administrator does to sessions: each gets FATAL 57P01 and is closed. Returns how many."""
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                       f"WHERE {condition}", *args))
    finally:
        await conn.close()


async def one_request(client: httpx.AsyncClient, turn: int) -> httpx.Response:
    """The four operations of a call, REST and Vapi, all of them on the database."""
    provider, contact = random.choice(SMALL.providers_of(1)), random.choice(SMALL.contacts_of(1))
    kind = turn % 5
    if kind == 0:
        start = future(days=random.randint(1, 600), hour=random.randint(9, 16))
        return await client.post("/api/v1/appointments", headers=auth(1), json={
            "contactId": contact, "providerId": provider, "start": start, "durationMinutes": 30})
    if kind == 1:
        return await client.get(f"/api/v1/contacts/{contact}/appointments/upcoming", headers=auth(1))
    if kind == 2:
        return await client.post(f"/api/v1/appointments/{random.randint(1, 3000)}/cancel", headers=auth(1))
    if kind == 3:
        day = future(days=random.randint(1, 600))[:10]
        return await client.get(f"/api/v1/providers/{provider}/availability", params={"date": day},
                                headers=auth(1))
    call = {"id": f"c{turn}", "function": {"name": "lookupUpcomingAppointment", "arguments": {"contactId": contact}}}
    return await client.post("/api/vapi/tools/lookupUpcomingAppointment", headers=auth(1),
                             json={"message": {"toolCallList": [call]}})


def outcome(resp: httpx.Response) -> str:
    """OK, or what is wrong with the answer: a 5xx other than the named 503, or a 503 naming something else."""
    if resp.status_code < 500:
        return OK
    if resp.status_code == 503 and resp.json().get("error") == "database_unavailable":
        return OK
    return f"{resp.status_code} {resp.text[:200]}"


async def load_while(disturb: Callable[[], object], base_url: str) -> tuple[collections.Counter[str], int]:
    """Concurrent requests for as long as `disturb` runs (in a thread); returns the outcomes and the 503 count."""
    outcomes: collections.Counter[str] = collections.Counter()
    unavailable = 0
    done = asyncio.Event()

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal unavailable
        for turn in itertools.count():
            if done.is_set():
                return
            try:
                resp = await one_request(client, turn)
            except httpx.TransportError as exc:  # the service itself must stay up throughout
                outcomes[f"transport {type(exc).__name__}"] += 1
                continue
            outcomes[outcome(resp)] += 1
            unavailable += resp.status_code == 503

    limits = httpx.Limits(max_connections=WORKERS)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:
        workers = [asyncio.create_task(worker(client)) for _ in range(WORKERS)]
        try:
            await asyncio.to_thread(disturb)
        finally:
            done.set()
            await asyncio.gather(*workers)
    return outcomes, unavailable


def wait_until_booking_works(base_url: str) -> int:
    deadline = time.monotonic() + BACK_WITHIN_S
    with httpx.Client(base_url=base_url, timeout=10) as client:
        while True:
            body = {"contactId": SMALL.contacts_of(1)[0], "providerId": SMALL.providers_of(1)[0],
                    "start": future(days=650), "durationMinutes": 30}
            status = client.post("/api/v1/appointments", json=body, headers=auth(1)).status_code
            if status == 201 or time.monotonic() > deadline:
                return status
            time.sleep(0.2)


def test_restarts_under_load_give_503_never_500_and_the_service_recovers(tmp_path: Path) -> None:
    with service_on_own_cluster(tmp_path, "restarts") as (pg, proc):
        dsn = proc.dsn
        terminated: list[int] = []

        def disturb() -> None:
            time.sleep(0.5)  # the load is under way, every pooled connection in use
            for _ in range(TERMINATIONS):
                terminated.append(asyncio.run(terminate_backends(dsn, "application_name = 'bookbench-service'")))
                time.sleep(0.4)
            for _ in range(RESTARTS):
                restart(pg)
                time.sleep(0.6)

        outcomes, unavailable = asyncio.run(load_while(disturb, proc.base_url))
        back = wait_until_booking_works(proc.base_url)
        log = (tmp_path / "svc.log").read_text(errors="replace")
    assert sum(terminated) > 0 and unavailable > 0  # the restarts did hit requests in flight
    assert set(outcomes) == {OK}, outcomes.most_common()
    assert back == 201
    for sign in ("Traceback", "Exception in ASGI application", "unhandled error"):
        assert sign not in log, log[-3000:]


@pytest.fixture(scope="module")
def dsn(new_db: Callable[[], str]) -> str:
    return new_db()


def test_a_connection_killed_under_the_caller_is_unavailable_and_replaced(dsn: str) -> None:
    async def scenario() -> None:
        pool = await open_pool(dsn, 1, 2)
        try:
            with pytest.raises(DatabaseUnavailable) as caught:
                async with acquired(pool) as conn:
                    pid = await conn.fetchval("SELECT pg_backend_pid()")
                    assert await terminate_backends(dsn, "pid = $1", pid) == 1
                    await conn.fetchval("SELECT 1")
            assert isinstance(caught.value.cause, (asyncpg.PostgresConnectionError, asyncpg.AdminShutdownError,
                                                   asyncpg.InterfaceError, asyncpg.InternalClientError, OSError))
            async with acquired(pool) as conn:  # the pool opened a new connection in its place
                assert await conn.fetchval("SELECT pg_backend_pid()") != pid
        finally:
            await pool.close()

    run_async(scenario())


def test_a_bug_on_a_live_connection_still_surfaces(dsn: str) -> None:
    async def scenario() -> None:
        pool = await open_pool(dsn, 1, 2)
        try:
            # a wrong argument type (asyncpg.DataError is an InterfaceError) and two queries at once on one
            # connection ("another operation is in progress"): the caller's bugs, not the database's absence
            with pytest.raises(asyncpg.DataError):
                async with acquired(pool) as conn:
                    await conn.fetchval("SELECT $1::int", "not a number")
            with pytest.raises(asyncpg.InterfaceError, match="another operation is in progress"):
                async with acquired(pool) as conn:
                    slow = asyncio.ensure_future(conn.fetchval("SELECT pg_sleep(0.2)"))
                    await asyncio.sleep(0)  # the slow query is under way
                    try:
                        await conn.fetchval("SELECT 1")
                    finally:
                        await slow
            async with acquired(pool) as conn:
                assert await conn.fetchval("SELECT 1") == 1
        finally:
            await pool.close()

    run_async(scenario())

