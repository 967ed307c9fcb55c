"""Microbenchmarks (pytest-benchmark) of the booking function and the upcoming lookup under each index set, at 1M
appointments, straight on PostgreSQL: the per-statement cost that the load runs add up. Not part of `make test`."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from bookbench.config.dataset import DatasetParams
from bookbench.db import indexes
from bookbench.db.conn import connect, run_with
from bookbench.db.seed import seed
from bookbench.pipeline.stack import database
from target_service import queries

BENCH_DB = "bookbench_bench"
PARAMS = DatasetParams()
SETS = ("none", "seed", "recommended")


@pytest.fixture(scope="module")
def dsn() -> Iterator[str]:
    with database(None, name=BENCH_DB) as url:
        run_with(url, lambda conn: seed(conn, PARAMS))
        yield url
        run_with(url, lambda conn: indexes.apply(conn, "recommended"))


class Session:
    """One connection on its own event loop, so that pytest-benchmark can time plain synchronous calls."""

    def __init__(self, dsn: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.conn: asyncpg.Connection = self.loop.run_until_complete(connect(dsn))

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        self.run(self.conn.close())
        self.loop.close()


@pytest.fixture(params=SETS)
def session(request: pytest.FixtureRequest, dsn: str) -> Iterator[tuple[str, Session]]:
    run_with(dsn, lambda conn: indexes.apply(conn, request.param))
    s = Session(dsn)
    yield request.param, s
    s.close()


def test_booking_function(benchmark: Any, session: tuple[str, Session]) -> None:
    """book_appointment_atomic on free slots, each call rolled back so every round sees the same table."""
    set_name, s = session
    org = 1
    providers = list(PARAMS.providers_of(org))
    contact = PARAMS.contacts_of(org)[0]
    base = dt.datetime.combine(PARAMS.anchor + dt.timedelta(days=10), dt.time(9), tzinfo=dt.UTC)
    slots = itertools.count()

    async def book() -> str:
        i = next(slots)
        tx = s.conn.transaction()
        await tx.start()
        try:
            row = await s.conn.fetchrow(queries.BOOK, org, contact, providers[i % len(providers)],
                                        base + dt.timedelta(days=i % 100, minutes=7), 15)
        finally:
            await tx.rollback()
        assert row is not None  # the function always answers one row
        return str(row["status"])

    benchmark.extra_info["index_set"] = set_name
    status = benchmark.pedantic(lambda: s.run(book()), rounds=30 if set_name == "none" else 300, warmup_rounds=3)
    assert status in ("booked", "slot_taken")


def test_upcoming_lookup(benchmark: Any, session: tuple[str, Session]) -> None:
    """The seed's lookup: a contact's next booked appointment (org + contact + scheduled_at >= now())."""
    set_name, s = session
    contacts = itertools.cycle(PARAMS.contacts_of(1))

    async def lookup() -> Any:
        return await s.conn.fetchrow(queries.UPCOMING, 1, next(contacts))

    benchmark.extra_info["index_set"] = set_name
    row = benchmark.pedantic(lambda: s.run(lookup()), rounds=30 if set_name == "none" else 300, warmup_rounds=3)
    assert row is not None
