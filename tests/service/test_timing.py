"""GET /stats/timing: the service's own per-request timing (handler, pool wait, connection held) on a real uvicorn
over the embedded PostgreSQL, checked against known answers: a CPU delay the service adds itself, an advisory lock
the test holds, a pool of one connection the test keeps busy.

Tolerances: a known delay is a lower bound that cannot be beaten (the time was spent where it is attributed); what
is allowed above it is stretched by budget() (tests/budget.py), never a bare wall-clock constant.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from bookbench.artifacts.db_evidence import ServiceTiming
from bookbench.config.dataset import api_key
from bookbench.pipeline.stack import ServiceProcess
from tests.budget import budget
from tests.conftest import SMALL, seeded

pytestmark = pytest.mark.integration

ORG = 1
PROVIDER = SMALL.providers_of(ORG)[0]
CONTACT = SMALL.contacts_of(ORG)[0]
UPCOMING = f"/api/v1/contacts/{CONTACT}/appointments/upcoming"
FAR = 3600.0  # an `until` beyond anything a test sends
_day = itertools.count(400)


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key(ORG)}"}


def booking() -> dict[str, Any]:
    start = dt.datetime.now(dt.UTC).replace(hour=10, minute=0, second=0, microsecond=0) + dt.timedelta(
        days=next(_day))
    return {"contactId": CONTACT, "providerId": PROVIDER, "start": start.isoformat(), "durationMinutes": 30}


def timing(client: httpx.Client, since: float, until: float) -> ServiceTiming:
    resp = client.get("/stats/timing", params={"since": since, "until": until})
    assert resp.status_code == 200, resp.text
    return ServiceTiming.model_validate(resp.json())  # the contract bookbench reads (extra fields forbidden)


def settled(client: httpx.Client, since: float, expected: int) -> ServiceTiming:
    """The window from `since` once `expected` requests are in it: a request is filed just after its response is
    sent (its connection goes back to the pool first), so a client can hold the answer a moment before that."""
    deadline = time.monotonic() + budget(10)
    while True:
        found = timing(client, since, time.time() + FAR)
        if found.requests >= expected or time.monotonic() > deadline:
            assert found.requests == expected, found
            return found
        time.sleep(0.01)


def lookups(client: httpx.Client, n: int) -> None:
    for _ in range(n):
        assert client.get(UPCOMING, headers=auth()).status_code == 200


def warmed(client: httpx.Client) -> None:
    """The API key in the service's cache (later requests take one connection, not two), and that first request
    filed, so that a window opened after this holds none of it."""
    lookups(client, 1)
    settled(client, 0, 1)


@contextmanager
def own_service(dsn: str, tmp: Path, **env: str) -> Iterator[httpx.Client]:
    proc = ServiceProcess(dsn, log_path=tmp / "service.log", extra_env=env)
    proc.start(timeout=budget(30))
    try:
        with httpx.Client(base_url=proc.base_url, timeout=budget(10)) as c:
            yield c
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def client(api: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.base_url, timeout=budget(10)) as c:
        warmed(c)  # and every test leaves its own requests filed, so that the next one's windows start clean
        yield c


@pytest.fixture(scope="module")
def fresh_db(new_db: Callable[[], str]) -> Callable[[], str]:
    return lambda: seeded(new_db())


# -- the window ------------------------------------------------------------------------------------------------------
def test_counted_requests_fall_in_their_window_and_nothing_else_does(client: httpx.Client) -> None:
    t0 = time.time()
    lookups(client, 20)
    for path in ("/stats", "/healthz", "/readyz"):  # not load: never timed, like never counted
        assert client.get(path).status_code == 200
    first = settled(client, t0, 20)
    t1 = time.time()
    lookups(client, 30)
    settled(client, t1, 30)
    t2 = time.time()

    assert timing(client, t0, t1).requests == 20
    assert timing(client, t1, t2).requests == 30
    both = timing(client, t0, t2)
    assert both.requests == 50 and both.complete
    assert both.handler_ms_mean is not None and both.db_ms_mean is not None and both.pool_wait_ms_mean is not None
    # the connection is held inside the handler, and waited for before that
    assert 0 < both.db_ms_mean <= both.handler_ms_mean
    assert 0 < both.pool_wait_ms_mean <= both.handler_ms_mean
    assert set(both.bands) == {"p50", "p95"}
    p50, p95 = both.bands["p50"], both.bands["p95"]
    # ranks 45-55 % and 94-96 % of 50 requests: at least the request at each lower percentile
    assert 1 <= p50.requests <= 50 and 1 <= p95.requests <= 50
    assert p50.handler_ms <= p95.handler_ms
    assert first.requests == 20  # the uncounted paths added nothing


def test_an_empty_window_is_not_measured_never_zero(client: httpx.Client) -> None:
    now = time.time()
    empty = client.get("/stats/timing", params={"since": now + 10 * FAR, "until": now + 11 * FAR})
    assert empty.status_code == 200
    assert empty.json() == {"requests": 0, "handler_ms_mean": None, "pool_wait_ms_mean": None, "db_ms_mean": None,
                            "bands": {}, "complete": True}
    ServiceTiming.model_validate(empty.json())


@pytest.mark.parametrize(("query", "field"), [
    ({"until": "1"}, "query.since"),
    ({"since": "1"}, "query.until"),
    ({"since": "yesterday", "until": "1"}, "query.since"),
    ({"since": "nan", "until": "1"}, "query.since"),
    ({"since": "0", "until": "inf"}, "query.until"),
    ({"since": "-1", "until": "1"}, "query.since"),
    ({"since": "20", "until": "10"}, "query.until"),
])
def test_a_bad_window_is_refused_naming_the_parameter(client: httpx.Client, query: dict[str, str],
                                                      field: str) -> None:
    resp = client.get("/stats/timing", params=query)
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["error"] == "invalid_request"
    assert body["detail"].startswith(f"{field}: "), body
    assert body["fields"][0]["field"] == field


# -- known answers ---------------------------------------------------------------------------------------------------
async def _wait_for_advisory_lock(dsn: str, deadline_s: float) -> float:
    """perf_counter() once a backend of the service's waits on an advisory lock (pg_stat_activity)."""
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + deadline_s
        while not await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name = 'bookbench-service' AND wait_event_type = 'Lock' AND wait_event = 'advisory'"):
            assert time.monotonic() < deadline, "the service's booking never waited on the held lock"
            await asyncio.sleep(0.005)
        return time.perf_counter()
    finally:
        await conn.close()


async def _raw_get(port: int, path: str) -> bytes:
    """One GET on a connection of its own, written before this returns its reader: the request is on its way."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: {auth()['Authorization']}\r\n" \
           "connection: close\r\n\r\n"
    writer.write(head.encode())
    await writer.drain()
    try:
        return await reader.read()
    finally:
        writer.close()


async def _lock_then_book(dsn: str, base_url: str, hold_s: float, lookups_behind: int = 0
                          ) -> tuple[int, float, float, list[bytes]]:
    """Hold the booking lock of (ORG, PROVIDER), book for it, keep the lock `hold_s` after the booking is seen
    waiting on it (and `lookups_behind` lookups are sent behind it); the booking's status, the seconds its
    connection was surely held, the client's seconds for the booking, and the lookups' answers."""
    holder = await asyncpg.connect(dsn)
    await holder.execute("BEGIN")
    await holder.execute("SELECT pg_advisory_xact_lock($1::int, $2::int)", ORG, PROVIDER)
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=budget(10)) as client:
            sent = time.perf_counter()
            book = asyncio.create_task(client.post("/api/v1/appointments", json=booking(), headers=auth()))
            seen = await _wait_for_advisory_lock(dsn, budget(10))
            port = httpx.URL(base_url).port
            assert port is not None
            behind = [asyncio.create_task(_raw_get(port, UPCOMING)) for _ in range(lookups_behind)]
            await asyncio.sleep(hold_s)
            await holder.execute("ROLLBACK")  # the transaction-scoped lock goes with it
            released = time.perf_counter()
            resp = await book
            answered = time.perf_counter()
            answers = [await t for t in behind]
        return resp.status_code, released - seen, answered - sent, answers
    finally:
        await holder.close()  # a lock still held (the test failed before the release) goes with the session


def test_a_held_lock_is_connection_time_not_pool_wait(client: httpx.Client, api: ServiceProcess) -> None:
    t0 = time.time()
    status, held_s, client_s, _ = asyncio.run(_lock_then_book(api.dsn, api.base_url, hold_s=0.3))
    assert status == 201
    got = settled(client, t0, 1)
    assert got.db_ms_mean is not None and got.handler_ms_mean is not None and got.pool_wait_ms_mean is not None
    # known answer: the connection waited on the lock at least from when the test saw it wait to the release
    assert got.db_ms_mean >= held_s * 1000
    # and no more than the request took: the handler's own time, itself inside what the client saw (the release
    # after the response is sent is the only part outside it: allowed for by the budget)
    assert got.db_ms_mean <= got.handler_ms_mean <= client_s * 1000 + budget(0.05) * 1000
    # a free pool: the lock is not counted as waiting for a connection
    assert got.pool_wait_ms_mean < held_s * 1000 / 10


def test_a_calibration_delay_is_handler_time_outside_the_database(fresh_db: Callable[[], str],
                                                                  tmp_path: Path) -> None:
    delay_ms = 40.0
    with own_service(fresh_db(), tmp_path, BOOKBENCH_CALIBRATION_DELAY_MS=str(delay_ms)) as c:
        warmed(c)
        t0 = time.time()
        lookups(c, 10)
        got = settled(c, t0, 10)
    assert got.handler_ms_mean is not None and got.db_ms_mean is not None and got.pool_wait_ms_mean is not None
    # the service spins `delay_ms` before the route runs: every request's handler time holds it, none of it is
    # database or pool time
    rest = got.handler_ms_mean - got.db_ms_mean - got.pool_wait_ms_mean
    assert rest >= delay_ms
    assert rest <= delay_ms + budget(0.02) * 1000  # a lookup's own Python is well under a millisecond idle
    for band in got.bands.values():
        assert band.handler_ms - band.db_ms - band.pool_wait_ms >= delay_ms


def test_pool_wait_grows_when_the_pool_is_exhausted(fresh_db: Callable[[], str], tmp_path: Path) -> None:
    dsn = fresh_db()
    behind = 6
    with own_service(dsn, tmp_path, BOOKBENCH_POOL_MIN_SIZE="1", BOOKBENCH_POOL_MAX_SIZE="1") as c:
        warmed(c)
        # negative control: the same lookups one at a time never find the only connection taken
        t0 = time.time()
        lookups(c, behind)
        free = settled(c, t0, behind)
        # a booking holds the only connection waiting on the lock; the lookups sent behind it wait for the pool
        t1 = time.time()
        hold_s = budget(0.3)
        status, held_s, _, answers = asyncio.run(_lock_then_book(dsn, str(c.base_url), hold_s, behind))
        assert status == 201
        assert all(a.startswith(b"HTTP/1.1 200") for a in answers), answers
        busy = settled(c, t1, behind + 1)
    assert free.pool_wait_ms_mean is not None and busy.pool_wait_ms_mean is not None and busy.db_ms_mean is not None
    # known answer: each lookup waited from its arrival (just after it was written, at most half the hold on a
    # busy machine) to the lock's release, and the booking waited for nothing
    assert busy.pool_wait_ms_mean >= behind * (held_s / 2) * 1000 / (behind + 1)
    assert busy.pool_wait_ms_mean > 10 * free.pool_wait_ms_mean
    # and the lock wait is the booking's connection time, whichever request waited for that connection
    assert busy.db_ms_mean >= held_s * 1000 / (behind + 1)


# -- the ring ----------------------------------------------------------------------------------------------------------
def test_a_window_whose_start_was_evicted_says_so(fresh_db: Callable[[], str], tmp_path: Path) -> None:
    with own_service(fresh_db(), tmp_path, BOOKBENCH_TIMING_RING_SIZE="5") as c:
        warmed(c)
        t0 = time.time()
        lookups(c, 3)
        held = settled(c, t0, 3)
        assert held.complete  # 4 requests in a ring of 5: nothing evicted yet
        lookups(c, 5)
        deadline = time.monotonic() + budget(10)
        while (late := timing(c, t0, time.time() + FAR)).requests != 5 or late.complete:
            assert time.monotonic() < deadline, late
            time.sleep(0.01)
        # 9 requests in a ring of 5: the window from t0 lost its start and says so; one after the oldest kept is whole
        assert not late.complete
        assert timing(c, time.time(), time.time() + FAR).complete


def test_timing_switched_off_answers_why(fresh_db: Callable[[], str], tmp_path: Path) -> None:
    with own_service(fresh_db(), tmp_path, BOOKBENCH_TIMING_RING_SIZE="0") as c:
        lookups(c, 2)
        resp = c.get("/stats/timing", params={"since": 0, "until": time.time()})
        assert resp.status_code == 404
        assert orjson.loads(resp.content) == {
            "error": "timing_off",
            "detail": "this service's per-request timing is switched off (BOOKBENCH_TIMING_RING_SIZE=0)"}
        deadline = time.monotonic() + budget(10)
        while (handled := c.get("/stats").json()["handled"]) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)  # counted once the connection is back in the pool, a moment after the answer
        assert handled == 2  # counting goes on
