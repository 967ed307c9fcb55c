"""Issue 21, item 7: SERIALIZABLE as the role's default. The dispatcher runs READ COMMITTED anyway and retries
serialization failures; `bookbench serve` keeps the booking API up when a dispatcher dies, and the log it names
is there to read. Real database, real processes."""

from __future__ import annotations

import concurrent.futures
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest

from bookbench.artifacts.notifications import read_received
from bookbench.db.embedded import free_port
from bookbench.pipeline.notify import NotifyStack
from bookbench.pipeline.stack import ServiceProcess, stop_group
from target_service.notify.dispatcher import open_pool, retry_transient
from target_service.notify.settings import NotifySettings
from tests.budget import budget
from tests.conftest import SMALL, fetch, run_async, seeded
from tests.service.test_service_api import auth, future

# not serial: isolation levels and delivery counts, nothing measured against the clock
pytestmark = [pytest.mark.integration]


def _serializable_for_the_role(dsn: str) -> str:
    """SERIALIZABLE as this role's default in this database only (ALTER ROLE ... IN DATABASE): the session's shared
    cluster and its other databases are untouched."""
    name = dsn.rsplit("/", 1)[1].split("?")[0]
    fetch(dsn, f"ALTER ROLE CURRENT_USER IN DATABASE {name} SET default_transaction_isolation = 'serializable'")
    assert fetch(dsn, "SHOW transaction_isolation")[0][0] == "serializable"
    return dsn


@pytest.fixture(scope="module")
def dsn(new_db: Callable[[], str]) -> str:
    return _serializable_for_the_role(seeded(new_db()))


def test_the_dispatcher_runs_read_committed_whatever_the_role_default(dsn: str) -> None:
    async def isolation() -> str:
        pool = await open_pool(NotifySettings(database_url=dsn))
        try:
            return str(await pool.fetchval("SHOW transaction_isolation"))
        finally:
            await pool.close()

    assert run_async(isolation()) == "read committed"


def test_a_real_serialization_failure_is_retried(dsn: str) -> None:
    """A write skew the database itself refuses (40001): the first attempt fails, the retry succeeds."""
    calls: list[str] = []

    async def conflicting() -> str:
        calls.append("try")
        if len(calls) > 1:
            return "done"
        a, b = await asyncpg.connect(dsn), await asyncpg.connect(dsn)  # both SERIALIZABLE by the role's default
        try:
            tx = a.transaction()
            await tx.start()
            await a.fetchval("SELECT failures FROM notification_breaker WHERE provider = 'sms'")
            await b.execute("UPDATE notification_breaker SET failures = failures WHERE provider = 'sms'")
            try:
                await a.execute("UPDATE notification_breaker SET failures = failures WHERE provider = 'sms'")
            finally:
                await tx.rollback()
            return "no conflict"
        finally:
            await a.close()
            await b.close()

    assert run_async(retry_transient(conflicting, "test", random.Random(1))) == "done"
    assert len(calls) == 2


def _book_many(base_url: str, n: int) -> list[int]:
    def one(i: int) -> int:
        org = 1 + i % SMALL.orgs
        body = {"contactId": SMALL.contacts_of(org)[0], "providerId": SMALL.providers_of(org)[i % 3],
                "start": future(days=500 + i // 9, hour=9 + i % 8)}
        resp = httpx.post(f"{base_url}/api/v1/appointments", json=body, headers=auth(org), timeout=30)
        assert resp.status_code == 201, resp.text
        return int(resp.json()["appointment_id"])

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(n)))


def test_dispatchers_deliver_everything_on_a_serializable_database(dsn: str, tmp_path: Path) -> None:
    service = ServiceProcess(dsn, log_path=tmp_path / "svc.log")
    service.start()
    stack = NotifyStack(dsn, 3, tmp_path / "logs", tmp_path / "rec")
    stack.start()
    try:
        ids = _book_many(service.base_url, 60)
        deadline = time.monotonic() + budget(90)  # ~240 deliveries to local fakes: seconds, unless swamped
        while True:
            left = fetch(dsn, "SELECT count(*) AS n FROM notification_outbox WHERE appointment_id = ANY($1) "
                              "AND status <> 'sent'", ids)[0]["n"]
            assert stack.dead() is None, stack.dead()
            if left == 0:
                break
            assert time.monotonic() < deadline, f"{left} notifications still undelivered"
            time.sleep(0.5)
        assert fetch(dsn, "SELECT count(*) AS n FROM notification_outbox WHERE appointment_id = ANY($1)",
                     ids)[0]["n"] == 2 * len(ids)  # an SMS and a calendar event per booking
        assert stack.dead() is None
    finally:
        stack.stop()
        service.stop()


def _dispatcher_pids(serve: subprocess.Popen[bytes]) -> list[int]:
    return [p.pid for p in psutil.Process(serve.pid).children(recursive=True)
            if "target_service.notify" in " ".join(p.cmdline())]


def _wait_for(check: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while not (got := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return got


def test_serve_keeps_the_api_up_when_a_dispatcher_dies(dsn: str, tmp_path: Path) -> None:
    port = free_port()
    out = tmp_path / "serve.out"
    with out.open("wb") as sink:
        serve = subprocess.Popen([sys.executable, "-m", "bookbench", "serve", "--port", str(port), "--dispatchers",
                                  "1", "--dsn", dsn], stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
                                 env={**os.environ, "COLUMNS": "300", "NO_COLOR": "1"})
    try:
        _wait_for(lambda: "notifications:" in out.read_text(), 90, "serve to start")
        pids = _wait_for(lambda: _dispatcher_pids(serve), 30, "the dispatcher")
        os.kill(pids[0], signal.SIGKILL)  # type: ignore[index]
        text = str(_wait_for(lambda: "dispatcher1 exited" in out.read_text() and out.read_text(), 30,
                             "serve to report the dead dispatcher"))
        log = re.search(r"\(log: (\S+dispatcher1\.log)\)", text.replace("\n", ""))
        assert log, text
        time.sleep(2)  # serve's watch loop has had several turns since it reported
        assert serve.poll() is None, text
        assert Path(log.group(1)).exists(), text
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
        contact = SMALL.contacts_of(1)[0]
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/contacts/{contact}/appointments/upcoming",
                         headers=auth(1), timeout=10).status_code == 200
    finally:
        stop_group(serve, 30)
    text = out.read_text()
    kept = re.search(r"logs kept in (\S+)", text)
    assert kept and (Path(kept.group(1)) / "logs" / "dispatcher1.log").exists(), text
    shutil.rmtree(kept.group(1))  # kept for the user; this test has read it


def test_a_second_cancellation_is_delivered_once_with_its_own_key(dsn: str, tmp_path: Path) -> None:
    """Item 8 end to end: cancel, restore by hand, cancel again. Each cancellation is one SMS (the providers see two
    keys, each once); the calendar event is deleted once and the second delete finds it gone (a success)."""
    service = ServiceProcess(dsn, log_path=tmp_path / "svc.log")
    service.start()
    stack = NotifyStack(dsn, 1, tmp_path / "logs", tmp_path / "rec")
    stack.start()
    try:
        org = 2
        made = httpx.post(f"{service.base_url}/api/v1/appointments", headers=auth(org), timeout=30, json={
            "contactId": SMALL.contacts_of(org)[1], "providerId": SMALL.providers_of(org)[2],
            "start": future(days=600, hour=12)})
        assert made.status_code == 201, made.text
        appt = made.json()["appointment_id"]
        for _ in range(2):
            cancel = httpx.post(f"{service.base_url}/api/v1/appointments/{appt}/cancel", headers=auth(org), timeout=30)
            assert cancel.status_code == 200, cancel.text
            fetch(dsn, "UPDATE appointments SET status = 'booked', cancelled_at = NULL WHERE id = $1", appt)
        _wait_for(lambda: not fetch(dsn, "SELECT 1 FROM notification_outbox WHERE appointment_id = $1 "
                                         "AND status <> 'sent'", appt), 60, "the notifications to be delivered")
        rows = fetch(dsn, "SELECT channel, kind, dedup_key FROM notification_outbox WHERE appointment_id = $1", appt)
        sms_keys = {r["dedup_key"] for r in rows if r["channel"] == "sms"}
        assert len(sms_keys) == 3
        sms = [r for r in read_received(stack.record_file("sms")) if r.get("key") in sms_keys]
        assert sorted(r["key"] for r in sms) == sorted(sms_keys)  # each message once, none repeated
        calendar = [r for r in read_received(stack.record_file("calendar"))
                    if r.get("key") in (f"bb{appt}", f"bb{appt}-delete")]
        assert sorted(r["op"] for r in calendar) == ["delete", "insert"]
        assert stack.dead() is None
    finally:
        stack.stop()
        service.stop()
