"""The transactional outbox: a booking and a cancellation queue their notifications in the same transaction, a
refused or rolled-back booking queues none, and a conflict answer queues none."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import httpx
import pytest

from bookbench.pipeline.stack import ServiceProcess
from target_service import queries
from tests.conftest import SMALL, fetch, run_sql
from tests.service.test_service_api import auth, body

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(api: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.base_url, timeout=10) as c:
        yield c


def _rows(dsn: str, appt: int) -> list[tuple[str, str, str]]:
    return sorted((r["channel"], r["kind"], r["dedup_key"]) for r in fetch(
        dsn, "SELECT channel, kind, dedup_key FROM notification_outbox WHERE appointment_id = $1", appt))


def test_booking_and_cancel_queue_their_notifications(client: httpx.Client, small_db: str) -> None:
    b = body()
    appt = client.post("/api/v1/appointments", json=b, headers=auth(1)).json()["appointment_id"]
    assert _rows(small_db, appt) == [("calendar", "insert", f"bb{appt}"), ("sms", "confirm", f"sms-confirm-{appt}")]
    payload = fetch(small_db, "SELECT payload FROM notification_outbox WHERE dedup_key = $1", f"bb{appt}")[0]
    assert '"event_id": "bb' in payload["payload"] and "provider-" in payload["payload"]
    queued = fetch(small_db, "SELECT count(*) AS n FROM notification_outbox")[0]["n"]
    assert client.post("/api/v1/appointments", json=b, headers=auth(1)).status_code == 409  # taken: nothing queued
    assert fetch(small_db, "SELECT count(*) AS n FROM notification_outbox")[0]["n"] == queued
    assert client.post(f"/api/v1/appointments/{appt}/cancel", headers=auth(1)).status_code == 200
    assert _rows(small_db, appt) == [("calendar", "delete", f"bb{appt}-delete"), ("calendar", "insert", f"bb{appt}"),
                                     ("sms", "cancel", f"sms-cancel-{appt}"), ("sms", "confirm", f"sms-confirm-{appt}")]
    assert client.post(f"/api/v1/appointments/{appt}/cancel", headers=auth(1)).status_code == 409
    assert len(_rows(small_db, appt)) == 4  # a refused cancel queues nothing
    # /stats shows the outbox (no dispatcher runs here: everything is pending) and the breakers
    notes = client.get("/stats").json()["notifications"]
    assert notes["outbox"]["sms.pending"] >= 2 and notes["outbox"]["calendar.pending"] >= 2
    assert notes["breakers"] == {"sms": "closed", "calendar": "closed"}


def test_a_rolled_back_booking_queues_nothing(small_db: str) -> None:
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=900)

    async def book_then_roll_back(conn) -> int:  # type: ignore[no-untyped-def]
        tx = conn.transaction()
        await tx.start()
        row = await conn.fetchrow(queries.BOOK, 1, SMALL.contacts_of(1)[0], SMALL.providers_of(1)[0], start, 30)
        await tx.rollback()
        return int(row["appointment_id"])

    appt = run_sql(small_db, book_then_roll_back)
    assert _rows(small_db, appt) == []
    assert fetch(small_db, "SELECT count(*) AS n FROM appointments WHERE id = $1", appt)[0]["n"] == 0
