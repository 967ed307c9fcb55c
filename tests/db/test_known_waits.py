"""The wait-event sampler against known answers (issue 27 item 6), through the real service over HTTP.

The test holds the advisory lock the booking function takes for (org, provider) while K bookings for that pair
arrive, so it knows, on its own clock, when each of the service's backends could have been waiting and when all of
them surely were. The sampler's counts must fall inside the bounds that follow from those moments.

How the bounds are computed (and why they do not depend on the machine's speed): every bound is a count of the
sampler's own instants inside an interval the test timed. "K backends surely waiting" holds from the moment the
test saw all K waiting to the moment it asked for the unlock, so every instant inside that interval must show K
Lock:advisory observations: the lower bound. A booking's backend can only be busy while its request is in flight
(from the test's send to the answer it read), so no instant outside those intervals may count it: the upper bound.
Counting real instants (rather than hz x seconds) removes the sampling error of a periodic sampler whose period
drifts on a busy machine; what remains is the uncertainty of an instant's own time, at most half the slowest
sample's round trip (WaitSampler.query_ms_max), by which each interval is narrowed (lower) or widened (upper). A
slow machine widens the bracket (bookings take longer to arrive and to drain), never moves the answer out of it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import asyncpg
import httpx
import pytest

from bookbench.config.dataset import api_key
from bookbench.db.waits import SERVICE_APPLICATION_NAME, WaitSampler
from bookbench.pipeline.stack import ServiceProcess
from tests.budget import budget
from tests.conftest import SMALL, run_async, running_service

pytestmark = pytest.mark.integration

HZ = 20.0
K = 4  # concurrent bookings for one (org, provider); the service's pool (20) holds them all at once
HOLD_S = 2.0  # how long the test holds the lock once all K wait (idle machine; stretched by budget())
SLEEP_S = 1.0  # a service-named backend in pg_sleep during the hold: known "other" time beside the lock waits
# (stretched too: the instants surely inside the sleep lie within 2 x SLEEP_S minus the call's round trip)
ORG = 1
_day = itertools.count(400)


@pytest.fixture(scope="module")
def api(small_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """The service with a request deadline far beyond the test's hold (stretched on a busy machine): a booking
    waiting on the held lock must wait, not end in a 504 at the default 5 s."""
    with running_service(small_db, tmp_path_factory.mktemp("svc"), {"BOOKBENCH_REQUEST_TIMEOUT_S": "60"}) as proc:
        yield proc


def start_of(days: int) -> str:
    base = dt.datetime.now(dt.UTC).replace(hour=10, minute=0, second=0, microsecond=0)
    return (base + dt.timedelta(days=days)).isoformat()


@dataclass
class Flight:
    sent: float
    answered: float
    status: int


async def book(client: httpx.AsyncClient, provider: int) -> Flight:
    body = {"contactId": SMALL.contacts_of(ORG)[0], "providerId": provider, "start": start_of(next(_day)),
            "durationMinutes": 30}
    sent = time.time()
    resp = await client.post("/api/v1/appointments", json=body, headers={"Authorization": f"Bearer {api_key(ORG)}"})
    return Flight(sent, time.time(), resp.status_code)


async def until(check: Callable[[], Awaitable[bool]], what: str, idle_s: float = 10.0) -> None:
    deadline = time.monotonic() + budget(idle_s)
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


class Instants:
    """Counts of the sampler's instants in intervals of the test's clock, widened or narrowed by the uncertainty
    of an instant's time."""

    def __init__(self, sampler: WaitSampler) -> None:
        self.sampler = sampler
        self.margin = sampler.query_ms_max / 2000

    def surely_inside(self, a: float, b: float) -> int:
        shares = self.sampler.shares(a + self.margin, b - self.margin) if b - a > 2 * self.margin else None
        return shares.instants if shares else 0

    def maybe_inside(self, a: float, b: float) -> int:
        shares = self.sampler.shares(a - self.margin, b + self.margin)
        return shares.instants if shares else 0


async def advisory_waiters(observer: asyncpg.Connection) -> int:
    return int(await observer.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock' "
        "AND wait_event = 'advisory' AND datname = current_database()", SERVICE_APPLICATION_NAME))


async def wait_past(sampler: WaitSampler, moment: float) -> None:
    """Until the sampler has instants after `moment` (so a window ending there is covered)."""
    async def covered() -> bool:
        shares = sampler.shares(moment + sampler.query_ms_max / 1000, time.time() + 1)
        return shares is not None and shares.instants >= 2

    await until(covered, "the sampler to sample past the window")


def test_advisory_lock_held_for_a_known_time(api: ServiceProcess, small_db: str) -> None:
    provider = SMALL.providers_of(ORG)[0]
    sleep_s = budget(SLEEP_S)
    hold_s = max(budget(HOLD_S), 2 * sleep_s)

    async def body() -> None:
        observer = await asyncpg.connect(small_db)
        holder = await asyncpg.connect(small_db, server_settings={"application_name": "known-answer-holder"})
        sleeper = await asyncpg.connect(small_db, server_settings={"application_name": SERVICE_APPLICATION_NAME})
        try:
            async with httpx.AsyncClient(base_url=api.base_url, timeout=budget(30)) as client:
                await book(client, provider)  # the org's key cached and the pool warm: what follows is the booking
                with WaitSampler(small_db, hz=HZ) as sampler:
                    assert await asyncio.to_thread(sampler.wait_started, budget(10)), sampler.not_measured
                    # the booking function's lock, taken the way it takes it; a session lock conflicts with it
                    await holder.execute("SELECT pg_advisory_lock($1, $2)", ORG % 2147483647, provider % 2147483647)
                    locked = time.time()
                    flights = [asyncio.create_task(book(client, provider)) for _ in range(K)]

                    async def all_waiting() -> bool:
                        return await advisory_waiters(observer) == K

                    await until(all_waiting, f"{K} bookings to wait on the advisory lock")
                    seen = time.time()
                    slept_from = time.time()
                    await sleeper.execute("SELECT pg_sleep($1)", sleep_s)
                    slept_to = time.time()
                    await asyncio.sleep(max(0.0, seen + hold_s - time.time()))
                    unlock = time.time()
                    assert await holder.fetchval("SELECT pg_advisory_unlock($1, $2)", ORG % 2147483647,
                                                 provider % 2147483647)
                    done = await asyncio.wait_for(asyncio.gather(*flights), budget(30))
                    end = max(f.answered for f in done) + 0.25
                    await wait_past(sampler, end)
                    assert [f.status for f in done] == [201] * K, done
                    # nothing of the service is busy outside the test's doing: the window's own control
                    assert await advisory_waiters(observer) == 0

                    shares = sampler.shares(locked, end)
                    n = Instants(sampler)
        finally:
            for c in (observer, holder, sleeper):
                await c.close()

        assert shares is not None and shares.note == "", shares
        counts = shares.counts
        in_flight = sum(n.maybe_inside(f.sent, f.answered) for f in done)  # booking backend-instants, at most
        arriving_or_draining = sum(n.maybe_inside(f.sent, seen) + n.maybe_inside(unlock, f.answered) for f in done)
        advisory_lo = K * n.surely_inside(seen, unlock)
        sleep_lo = n.surely_inside(slept_to - sleep_s, slept_from + sleep_s)  # pg_sleep ran sleep_s within
        sleep_hi = n.maybe_inside(slept_from, slept_to)
        observations_lo, observations_hi = advisory_lo + sleep_lo, in_flight + sleep_hi

        nominal_lock_s = K * (unlock - seen)
        nominal_share = nominal_lock_s / (nominal_lock_s + sleep_s)
        print(f"\nknown answer: {K} backends x {unlock - seen:.2f} s on the advisory lock + {sleep_s:.1f} s of "
              f"pg_sleep in a {end - locked:.2f} s window -> Lock:advisory share ~{nominal_share:.3f}, busy mean "
              f"~{(nominal_lock_s + sleep_s) / (end - locked):.2f}; sampled {shares.instants} instants at "
              f"{shares.hz} Hz: share {shares.shares['Lock:advisory']:.3f}, busy mean "
              f"{shares.busy_backends_mean:.2f}, counts {counts}; Lock:advisory in [{advisory_lo}, {in_flight}], "
              f"other (pg_sleep) >= {sleep_lo}, instant uncertainty +-{n.margin * 1000:.1f} ms")

        assert advisory_lo > 0 and sleep_lo > 0  # instants inside the surely-known intervals: bounds that bind
        assert advisory_lo <= counts["Lock:advisory"] <= in_flight
        # the sleeper is "other" (Timeout:PgSleep), never CPU; a booking outside its lock wait may add to either
        assert sleep_lo <= counts["other"] <= sleep_hi + arriving_or_draining
        assert sum(c for name, c in counts.items() if name not in ("Lock:advisory", "other")) <= arriving_or_draining
        assert observations_lo <= shares.observations <= observations_hi
        # the same bounds as the known answer's two figures
        share = shares.shares["Lock:advisory"]
        assert advisory_lo / observations_hi <= share <= in_flight / (in_flight + sleep_lo)
        assert observations_lo / shares.instants <= shares.busy_backends_mean <= observations_hi / shares.instants

    run_async(body())


def _unheld(api: ServiceProcess, small_db: str, providers: list[int]) -> tuple[dict[str, int], int]:
    """K bookings at once with nothing held: (counts over the window, instants any was in flight)."""

    async def body() -> tuple[dict[str, int], int]:
        async with httpx.AsyncClient(base_url=api.base_url, timeout=budget(30)) as client:
            await book(client, providers[0])
            with WaitSampler(small_db, hz=HZ) as sampler:
                assert await asyncio.to_thread(sampler.wait_started, budget(10)), sampler.not_measured
                began = time.time()
                done = await asyncio.wait_for(asyncio.gather(*(book(client, p) for p in providers)), budget(30))
                end = max(f.answered for f in done) + 0.25
                await wait_past(sampler, end)
                assert [f.status for f in done] == [201] * len(providers), done
                shares = sampler.shares(began, end)
                n = Instants(sampler)
        assert shares is not None
        return shares.counts, n.maybe_inside(min(f.sent for f in done), max(f.answered for f in done))

    return run_async(body())


def test_negative_control_distinct_providers_never_wait_on_the_lock(api: ServiceProcess, small_db: str) -> None:
    """A booking at once for each of the org's providers (3 in the small data set): no two take the same advisory
    lock, so no instant may show a Lock:advisory wait, however slow the machine (exactly 0)."""
    providers = list(SMALL.providers_of(ORG))
    assert len(set(providers)) >= 2
    counts, _ = _unheld(api, small_db, providers)
    print(f"\nnegative control, {len(providers)} providers: counts {counts}")
    assert counts["Lock:advisory"] == 0


def test_negative_control_same_provider_nothing_held(api: ServiceProcess, small_db: str) -> None:
    """The same K bookings for one provider with nothing held: they serialize only on each other, each for another's
    few milliseconds of booking. Bound: the first to take the lock never waited for it, so at most K-1 backends show
    Lock:advisory at any instant while the bookings were in flight; with the lock held by the test (above) it was all
    K, for seconds. (Not a share of the observations: a holder that has just committed is idle, and so not observed,
    while the waiter it woke still shows the wait until it runs: on a busy machine every backend observed at an
    instant can be a waiter. Seen: 2 of 2.)"""
    provider = SMALL.providers_of(ORG)[1]
    counts, in_flight = _unheld(api, small_db, [provider] * K)
    print(f"\nnegative control, one provider: counts {counts}, {in_flight} instants in flight")
    assert counts["Lock:advisory"] <= (K - 1) * in_flight


def test_pg_sleep_is_other_for_its_known_time(small_db: str) -> None:
    """A service-named backend in `SELECT pg_sleep(1)`: PostgreSQL shows it active on Timeout:PgSleep, which the
    sampler counts as "other" (not CPU) on each instant of the second it surely slept, and on no instant outside the
    call."""

    async def body() -> None:
        conn = await asyncpg.connect(small_db, server_settings={"application_name": SERVICE_APPLICATION_NAME})
        try:
            with WaitSampler(small_db, hz=HZ) as sampler:
                assert await asyncio.to_thread(sampler.wait_started, budget(10)), sampler.not_measured
                before = time.time()
                await asyncio.sleep(0.25)
                sent = time.time()
                await conn.execute("SELECT pg_sleep(1)")
                answered = time.time()
                await wait_past(sampler, answered + 0.25)
                shares = sampler.shares(before, answered + 0.25)
                n = Instants(sampler)
        finally:
            await conn.close()
        assert shares is not None
        surely, maybe = n.surely_inside(answered - 1, sent + 1), n.maybe_inside(sent, answered)
        print(f"\npg_sleep(1): 'other' on {shares.counts['other']} instants of {shares.instants} "
              f"(known: [{surely}, {maybe}], ~{HZ:.0f})")
        assert surely <= shares.counts["other"] <= maybe
        assert shares.observations == shares.counts["other"]

    run_async(body())
