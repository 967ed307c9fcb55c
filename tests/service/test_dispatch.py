"""The dispatcher against real fake providers and a real database: each row delivered exactly once by several
dispatchers, 429 Retry-After honoured, a final 4xx and exhausted retries dead-lettered, the breaker opening and
closing in the database, a calendar retry never creating a second event, a cancellation never overtaking its
booking's message."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from bookbench.artifacts.notifications import read_received
from bookbench.pipeline.notify import FAKE_CREDENTIALS, NotifyStack
from tests.budget import budget
from tests.conftest import fetch, run_sql

# not serial: every timing here is a lower bound (no sooner than Retry-After) or an eventual state, which a busy
# machine only delays; the breaker's outage lasts until the breaker opened, never a wall-clock length
pytestmark = [pytest.mark.integration]

# the first appointment id of these tests' rows (row i is BASE + i, so row 0 is BASE itself: every query takes
# `>= BASE`); far beyond any seeded or booked id
BASE = 50_000_000


def _insert(dsn: str, rows: list[tuple[int, str, str, str, dict]]) -> None:  # type: ignore[type-arg]
    async def work(conn) -> None:  # type: ignore[no-untyped-def]
        await conn.executemany(
            "INSERT INTO notification_outbox (appointment_id, org_id, channel, kind, dedup_key, payload) "
            "VALUES ($1, 1, $2, $3, $4, $5::jsonb)", [(a, c, k, key, json.dumps(p)) for a, c, k, key, p in rows])
        await conn.execute("SELECT pg_notify('bookbench_outbox', '')")
    run_sql(dsn, work)


def _sms(i: int, body: str = "hello") -> tuple[int, str, str, str, dict]:  # type: ignore[type-arg]
    return BASE + i, "sms", "confirm", f"sms-confirm-t{i}", {"to": "+15550001111", "body": f"{body} {i}"}


def _event(i: int, kind: str = "insert") -> tuple[int, str, str, str, dict]:  # type: ignore[type-arg]
    payload = {"calendar_id": "provider-1", "event_id": f"bbt{i}", "start": f"2031-01-01T{9 + i % 8:02d}:00:00+00:00",
               "end": f"2031-01-01T{9 + i % 8:02d}:30:00+00:00", "summary": f"t{i}"}
    return BASE + i, "calendar", kind, f"bbt{i}" + ("-delete" if kind == "delete" else ""), payload


def _wait_until(check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + budget(timeout)
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _status(dsn: str) -> dict[str, tuple[str, int]]:
    return {r["dedup_key"]: (r["status"], r["attempts"])
            for r in fetch(dsn, "SELECT dedup_key, status, attempts FROM notification_outbox "
                                "WHERE appointment_id >= $1", BASE)}


@contextmanager
def _stack(dsn: str, tmp: Path, dispatchers: int = 1, **env: str) -> Iterator[NotifyStack]:
    run_sql(dsn, lambda c: c.execute("DELETE FROM notification_outbox; DELETE FROM notification_breaker_log; "
                                     "UPDATE notification_breaker SET state = 'closed', failures = 0"))
    # the provider's answer may be slow on a busy machine; a timeout would make the retry a recorded redelivery
    # (the fake answers it as the first time), and these tests count deliveries
    env = {"http_timeout_s": f"{min(budget(30), 120):.0f}", **env}  # the setting allows at most 120 s
    stack = NotifyStack(dsn, dispatchers, tmp / "logs", tmp / "rec",
                        {f"BOOKBENCH_{k.upper()}": v for k, v in env.items()})
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


def _received(stack: NotifyStack, kind: str) -> list[dict]:  # type: ignore[type-arg]
    return read_received(stack.record_file(kind))


def test_several_dispatchers_deliver_every_row_exactly_once(small_db: str, tmp_path: Path) -> None:
    with _stack(small_db, tmp_path, dispatchers=3) as stack:
        _insert(small_db, [_sms(i) for i in range(300)])
        _wait_until(lambda: all(s == "sent" for s, _ in _status(small_db).values()))
        keys = [r["key"] for r in _received(stack, "sms")]
    assert len(keys) == 300 and len(set(keys)) == 300


def test_429_retry_after_is_honoured(small_db: str, tmp_path: Path) -> None:
    with _stack(small_db, tmp_path) as stack:
        # limited until the first 429 is seen, then lifted: whenever the dispatcher's attempts land (a busy machine
        # may take seconds to pick the row up), the first is refused and a later one is not
        stack.set_faults_for("sms", {"rate_limits": [{"start_s": 0, "length_s": 600, "retry_after_s": 2}]})
        _insert(small_db, [_sms(1)])
        _wait_until(lambda: bool(_provider_state(stack, "sms")["rate_limited_at"]))
        stack.set_faults_for("sms", {})
        _wait_until(lambda: _status(small_db)["sms-confirm-t1"][0] == "sent")
        got = _received(stack, "sms")
        refused_at = _provider_state(stack, "sms")["rate_limited_at"]
    # delivered, once, not before the 2 s the last 429 asked for (both times on the provider's clock)
    assert len(got) == 1 and got[0]["t"] - max(refused_at) >= 1.9, (got, refused_at)
    assert _status(small_db)["sms-confirm-t1"] == ("sent", len(refused_at) + 1)


def _provider_state(stack: NotifyStack, kind: str) -> dict[str, Any]:
    return dict(httpx.get(f"{stack.url(kind)}/_bookbench/state", timeout=5).json())


def test_final_4xx_and_exhausted_retries_dead_letter(small_db: str, tmp_path: Path) -> None:
    with _stack(small_db, tmp_path, max_attempts="3", backoff_base_s="0.05", breaker_failures="100") as stack:
        _insert(small_db, [(*_sms(1, body="")[:4], {"to": "+1555", "body": ""})])  # 400: a Body is required
        _wait_until(lambda: _status(small_db)["sms-confirm-t1"][0] == "dead")
        assert _status(small_db)["sms-confirm-t1"] == ("dead", 1)  # a final answer: no retry
        stack.set_faults_for("sms", {"error_rate": 1.0})
        _insert(small_db, [_sms(2)])
        _wait_until(lambda: _status(small_db)["sms-confirm-t2"][0] == "dead")
    assert _status(small_db)["sms-confirm-t2"] == ("dead", 3)
    errors = fetch(small_db, "SELECT last_error FROM notification_outbox WHERE dedup_key = 'sms-confirm-t2'")
    assert errors[0]["last_error"] == "HTTP 503"


def test_breaker_opens_in_the_database_and_closes_after_the_outage(small_db: str, tmp_path: Path) -> None:
    with _stack(small_db, tmp_path, breaker_failures="3", breaker_cooldown_s="0.5") as stack:
        # the outage lasts until the breaker has opened, and ends then: a fixed-length outage on the wall clock
        # could end before a dispatcher slowed down by a busy machine ever tried a row (the breaker never opening)
        stack.set_faults_for("sms", {"outages": [{"start_s": 0, "length_s": 3_600}]})
        _insert(small_db, [_sms(i) for i in range(20)])
        _wait_until(lambda: bool(fetch(small_db, "SELECT 1 FROM notification_breaker_log WHERE provider = 'sms' "
                                                 "AND state = 'open'")))
        stack.set_faults_for("sms", {})
        _wait_until(lambda: all(s == "sent" for s, _ in _status(small_db).values()))
        log = [(r["state"]) for r in fetch(small_db, "SELECT state FROM notification_breaker_log "
                                                      "WHERE provider = 'sms' ORDER BY id")]
        keys = [r["key"] for r in _received(stack, "sms")]
        # what to look at if a row is sent but not received (seen once in six full runs): the fake's own count
        # of accepted messages against its record file, and each row's history
        fake = httpx.get(f"{stack.url('sms')}/_bookbench/state", timeout=5).json()
        rows = [dict(r) for r in fetch(small_db, "SELECT dedup_key, status, attempts, sent_at, last_error "
                                                 "FROM notification_outbox WHERE appointment_id >= $1", BASE)]
        history = [dict(r) for r in fetch(small_db, "SELECT * FROM notification_breaker_log ORDER BY id")]
    assert log[0] == "open" and log[-1] == "closed"
    # all after the outage, once each
    assert sorted(keys) == sorted({f"sms-confirm-t{i}" for i in range(20)}), (fake, rows, history)
    state = fetch(small_db, "SELECT state, failures FROM notification_breaker WHERE provider = 'sms'")[0]
    assert (state["state"], state["failures"]) == ("closed", 0)


def test_a_calendar_retry_never_creates_a_second_event(small_db: str, tmp_path: Path) -> None:
    with _stack(small_db, tmp_path) as stack:
        # the event already exists, as if an earlier attempt had created it and its answer was lost
        cal = stack.url("calendar")
        token = httpx.post(f"{cal}/token", data={
            "grant_type": "refresh_token", "client_id": FAKE_CREDENTIALS["BOOKBENCH_GOOGLE_CLIENT_ID"],
            "client_secret": FAKE_CREDENTIALS["BOOKBENCH_GOOGLE_CLIENT_SECRET"],
            "refresh_token": FAKE_CREDENTIALS["BOOKBENCH_GOOGLE_REFRESH_TOKEN"]}).json()["access_token"]
        _, _, _, _, payload = _event(1)
        httpx.post(f"{cal}/calendar/v3/calendars/provider-1/events", headers={"Authorization": f"Bearer {token}"},
                   json={"id": payload["event_id"], "start": {"dateTime": payload["start"]},
                         "end": {"dateTime": payload["end"]}}).raise_for_status()
        _insert(small_db, [_event(1)])
        _wait_until(lambda: _status(small_db)["bbt1"][0] == "sent")
        state = httpx.get(f"{cal}/_bookbench/state").json()
        records = _received(stack, "calendar")
    assert state["events"] == 1
    assert [r.get("duplicate", False) for r in records] == [False, True]  # the second insert was refused by id


def test_a_cancellation_never_overtakes_its_booking(small_db: str, tmp_path: Path) -> None:
    with _stack(small_db, tmp_path) as stack:
        # inserts slowed down, so that every delete is due long before its insert is done
        stack.set_faults_for("calendar", {"latency": {"median_ms": 400, "p95_ms": 600}})
        _insert(small_db, [row for i in range(10) for row in (_event(i), _event(i, "delete"))])
        _wait_until(lambda: all(s == "sent" for s, _ in _status(small_db).values()))
        records = _received(stack, "calendar")
        events = httpx.get(f"{stack.url('calendar')}/_bookbench/state").json()["events"]
    when = {r["key"]: r["t"] for r in records}
    for i in range(10):
        assert when[f"bbt{i}"] < when[f"bbt{i}-delete"]
    assert events == 0  # every event created, then deleted
