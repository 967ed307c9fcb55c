"""Schema, dataset generator, booking function and index sets on the real embedded PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import pytest

from bookbench.config.dataset import api_key
from bookbench.db import indexes
from bookbench.db.conn import connect, run_with
from bookbench.db.seed import seed
from tests.conftest import SMALL, fetch, params_with, seeded

pytestmark = pytest.mark.integration

BOOK = "SELECT * FROM book_appointment_atomic($1, $2, $3, now() + make_interval(days => $4), $5)"
CHECKSUM = """
SELECT md5(string_agg(t::text, '|' ORDER BY t.id)) FROM {table} t
"""


def _checksums(dsn: str) -> dict[str, str]:
    return {t: fetch(dsn, CHECKSUM.format(table=t))[0][0] for t in indexes.TABLES}


def test_same_seed_gives_identical_tables(new_db: Callable[[], str]) -> None:
    a, b = seeded(new_db()), seeded(new_db())
    assert _checksums(a) == _checksums(b)
    c = seeded(new_db(), params_with(seed=8))
    assert _checksums(c)["appointments"] != _checksums(a)["appointments"]


def test_seed_is_reused_when_unchanged_and_counts_rows(new_db: Callable[[], str]) -> None:
    dsn = new_db()
    first = run_with(dsn, lambda conn: seed(conn, SMALL))
    again = run_with(dsn, lambda conn: seed(conn, SMALL))
    assert not first.reused and again.reused
    assert first.row_counts == {"organizations": 3, "providers": 9, "contacts": 300, "appointments": 3000}


def test_a_reseed_empties_the_outbox_so_reused_ids_book(new_db: Callable[[], str]) -> None:
    # a booking queues outbox rows keyed by its appointment id; a re-seed (another dataset: the anchor day moved)
    # restarts the ids, so a row left behind would refuse the next booking that gets the same id
    dsn = seeded(new_db())
    contact, provider = _org1(dsn)
    booked = fetch(dsn, BOOK, 1, contact, provider, 400.25, 30)[0]
    assert booked["status"] == "booked" and fetch(dsn, "SELECT count(*) FROM notification_outbox")[0][0] > 0
    seeded(dsn, params_with(seed=8))
    assert fetch(dsn, "SELECT count(*) FROM notification_outbox")[0][0] == 0
    again = fetch(dsn, BOOK, 1, contact, provider, 400.25, 30)[0]
    assert again["status"] == "booked" and again["appointment_id"] == booked["appointment_id"]


def test_generated_data_is_consistent(small_db: str) -> None:
    # every appointment's contact and provider belong to the appointment's org
    bad = fetch(small_db, """
        SELECT count(*) FROM appointments a JOIN contacts c ON c.id = a.contact_id
        JOIN providers p ON p.id = a.provider_id WHERE c.org_id <> a.org_id OR p.org_id <> a.org_id""")
    assert bad[0][0] == 0
    statuses = {r[0] for r in fetch(small_db, "SELECT DISTINCT status FROM appointments")}
    assert statuses == {"booked", "completed", "cancelled", "no_show"}
    future = fetch(small_db, "SELECT count(*) FROM appointments WHERE scheduled_at > now() AND status = 'booked'")
    assert future[0][0] > 0


def test_sql_and_python_derive_the_same_api_key(small_db: str) -> None:
    stored = fetch(small_db, "SELECT api_key_hash FROM organizations WHERE id = 2")[0][0]
    import hashlib

    assert stored == hashlib.sha256(api_key(2).encode()).hexdigest()


def _org1(dsn: str) -> tuple[int, int]:
    contact = SMALL.contacts_of(1)[0]
    provider = SMALL.providers_of(1)[0]
    return contact, provider


def test_booking_function_answers(small_db: str) -> None:
    contact, provider = _org1(small_db)
    other_contact = SMALL.contacts_of(2)[0]
    day = 400.25  # far beyond the seeded horizon

    async def go(conn: asyncpg.Connection) -> list[str]:
        out = []
        for args in [(1, contact, provider, day, 30), (1, contact, provider, day + 0.01, 30),
                     (1, other_contact, provider, day + 1, 30), (1, contact, SMALL.providers_of(2)[0], day, 30),
                     (1, contact, provider, day + 2, 500), (1, contact, provider, -1, 30)]:
            row = await conn.fetchrow(BOOK, *args)
            assert row is not None
            out.append(row["status"])
        return out

    assert run_with(small_db, go) == ["booked", "slot_taken", "contact_not_found", "provider_not_found",
                                      "invalid", "invalid"]


@pytest.mark.parametrize("isolation", ["repeatable_read", "serializable"])
def test_booking_function_refuses_snapshot_isolation(small_db: str, isolation: str) -> None:
    contact, provider = _org1(small_db)

    async def go(conn: asyncpg.Connection) -> None:
        async with conn.transaction(isolation=isolation):  # type: ignore[arg-type]
            await conn.fetchrow(BOOK, 1, contact, provider, 450, 30)

    with pytest.raises(asyncpg.InvalidTransactionStateError, match="READ COMMITTED"):
        run_with(small_db, go)
    assert fetch(small_db, "SELECT count(*) FROM appointments WHERE scheduled_at > now() + interval '449 days'"
                 )[0][0] == 0


def test_concurrent_overlapping_bookings_serialize(small_db: str) -> None:
    """20 connections book overlapping (not identical) slots at once: exactly one wins."""
    contact, provider = _org1(small_db)

    async def go() -> list[str]:
        conns = [await connect(small_db) for _ in range(20)]
        try:
            rows = await asyncio.gather(*(
                c.fetchrow("SELECT * FROM book_appointment_atomic($1, $2, $3, "
                           "date_trunc('hour', now()) + interval '500 days' + make_interval(mins => $4), 30)",
                           1, contact, provider, i) for i, c in enumerate(conns)))
        finally:
            for c in conns:
                await c.close()
        return [r["status"] for r in rows if r is not None]

    statuses = asyncio.run(go())
    assert statuses.count("booked") == 1 and statuses.count("slot_taken") == 19


def test_index_sets_apply_and_drop_idempotently(new_db: Callable[[], str]) -> None:
    dsn = seeded(new_db())
    seed_names = {d.name for d in indexes.load_set("seed")}
    rec_names = {d.name for d in indexes.load_set("recommended")}

    def names() -> set[str]:
        return {s.name for s in run_with(dsn, indexes.status)}

    first = run_with(dsn, lambda c: indexes.apply(c, "seed"))
    assert set(first.created) == seed_names and names() == seed_names
    again = run_with(dsn, lambda c: indexes.apply(c, "seed"))
    assert again.created == [] and again.dropped == [] and names() == seed_names
    swap = run_with(dsn, lambda c: indexes.apply(c, "recommended"))
    assert set(swap.dropped) == seed_names and names() == rec_names
    assert {s.index_set for s in run_with(dsn, indexes.status)} == {"recommended"}
    run_with(dsn, lambda c: indexes.apply(c, "none"))
    run_with(dsn, lambda c: indexes.apply(c, "none"))
    assert names() == set()
    # the constraint indexes correctness needs are never touched
    kept = {r[0] for r in fetch(dsn, "SELECT indexname FROM pg_indexes WHERE tablename = 'contacts'")}
    assert {"contacts_pkey", "contacts_org_phone_key"} <= kept


def test_apply_replaces_an_invalid_leftover_of_its_own_index(new_db: Callable[[], str]) -> None:
    """An interrupted CREATE INDEX CONCURRENTLY leaves an INVALID index; IF NOT EXISTS alone would keep it."""
    dsn = seeded(new_db())
    run_with(dsn, lambda c: indexes.apply(c, "recommended"))
    run_with(dsn, lambda c: c.execute(
        "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'idx_appointments_provider_slot'::regclass"))
    assert not {s.name: s.valid for s in run_with(dsn, indexes.status)}["idx_appointments_provider_slot"]
    report = run_with(dsn, lambda c: indexes.apply(c, "recommended", exclusive=False))
    assert report.created == ["idx_appointments_provider_slot"]
    assert all(s.valid for s in run_with(dsn, indexes.status))
