"""The dispatcher's provider clients (target_service.notify.providers) against the fakes started as bookbench starts
them (`python -m bookbench.fakes sms|calendar`, credentials from the environment): over real HTTP, each kind of
answer becomes the Outcome the outbox acts on, and a redelivery with the same key is recognised, not delivered."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import httpx
import pytest

from bookbench.db.embedded import free_port
from target_service.notify.providers import Calendar, Outcome, Sms
from target_service.notify.settings import NotifySettings
from tests.budget import budget

pytestmark = pytest.mark.integration  # two uvicorn processes, no database

T = TypeVar("T")
# not the defaults: the fakes must read them from the environment, as the dispatcher does
ENV = {"BOOKBENCH_TWILIO_ACCOUNT_SID": "AC-wire", "BOOKBENCH_TWILIO_AUTH_TOKEN": "wire-token",
       "BOOKBENCH_GOOGLE_CLIENT_ID": "wire-client", "BOOKBENCH_GOOGLE_CLIENT_SECRET": "wire-secret",
       "BOOKBENCH_GOOGLE_REFRESH_TOKEN": "wire-refresh"}
# an id as Google writes them: quoted into the path by the client, decoded by the calendar
EVENT = {"calendar_id": "provider-1@group.calendar.google.com", "event_id": "bb0001", "summary": "Visit",
         "start": "2030-01-01T10:00:00Z", "end": "2030-01-01T10:30:00Z"}


def _start(kind: str, tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bookbench.fakes", kind, "--port", str(port), "--record",
                             str(tmp / f"{kind}.jsonl")], env={**os.environ, **ENV})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + budget(30)
    while True:
        try:
            httpx.get(f"{url}/_bookbench/state", timeout=1)
            return proc, url
        except httpx.HTTPError:
            assert proc.poll() is None, f"the fake {kind} exited with {proc.returncode}"
            assert time.monotonic() < deadline, f"the fake {kind} did not start"
            time.sleep(0.1)


@pytest.fixture(scope="module")
def fakes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    tmp = tmp_path_factory.mktemp("fakes")
    procs: list[subprocess.Popen[bytes]] = []
    urls: dict[str, str] = {}
    try:
        for kind in ("sms", "calendar"):
            proc, urls[kind] = _start(kind, tmp)
            procs.append(proc)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


@pytest.fixture
def settings(fakes: dict[str, str]) -> NotifySettings:
    for url in fakes.values():
        httpx.put(f"{url}/_bookbench/faults", json={}).raise_for_status()  # no faults left by another test
    return NotifySettings(database_url="postgresql://unused", sms_base_url=fakes["sms"],
                          calendar_base_url=fakes["calendar"], google_token_url=f"{fakes['calendar']}/token",
                          twilio_account_sid=ENV["BOOKBENCH_TWILIO_ACCOUNT_SID"],
                          twilio_auth_token=ENV["BOOKBENCH_TWILIO_AUTH_TOKEN"],
                          google_client_id=ENV["BOOKBENCH_GOOGLE_CLIENT_ID"],
                          google_client_secret=ENV["BOOKBENCH_GOOGLE_CLIENT_SECRET"],
                          google_refresh_token=ENV["BOOKBENCH_GOOGLE_REFRESH_TOKEN"])


def with_session(work: Callable[[aiohttp.ClientSession], Awaitable[T]], timeout_s: float = 5.0) -> T:
    async def main() -> T:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
            return await work(session)

    return asyncio.run(main())


def state(url: str) -> dict[str, Any]:
    return dict(httpx.get(f"{url}/_bookbench/state").json())


def faults(url: str, **set_: Any) -> None:
    httpx.put(f"{url}/_bookbench/faults", json=set_).raise_for_status()


def sms(settings: NotifySettings, key: str) -> Outcome:
    payload = {"to": "+15550100001", "body": "Booked for 10:00"}
    return with_session(lambda s: Sms(settings).send(s, payload, key))


def test_an_sms_is_delivered_once_however_often_its_key_is_sent(settings: NotifySettings,
                                                                fakes: dict[str, str]) -> None:
    before = state(fakes["sms"])
    assert sms(settings, "wire-sms-1") == Outcome(True)
    assert sms(settings, "wire-sms-1") == Outcome(True)  # a redelivery: answered as the first time
    after = state(fakes["sms"])
    assert after["accepted"] - before["accepted"] == 1 and after["redeliveries"] - before["redeliveries"] == 1
    received = httpx.get(f"{fakes['sms']}/_bookbench/received", params={"key": "wire-sms-1"}).json()
    assert [r.get("redelivery", False) for r in received] == [False, True]


def test_sms_faults_become_the_outcomes_the_outbox_acts_on(settings: NotifySettings, fakes: dict[str, str]) -> None:
    faults(fakes["sms"], rate_limits=[{"start_s": 0, "length_s": 60, "retry_after_s": 3}])
    assert sms(settings, "wire-sms-2") == Outcome(False, "HTTP 429", retry_after_s=3.0)
    faults(fakes["sms"], outages=[{"start_s": 0, "length_s": 60}])
    assert sms(settings, "wire-sms-2") == Outcome(False, "HTTP 503", provider_fault=True)
    faults(fakes["sms"])
    assert sms(settings, "wire-sms-2") == Outcome(True)  # the same key, delivered once the fault is over


def test_wrong_sms_credentials_are_final(settings: NotifySettings) -> None:
    out = sms(settings.model_copy(update={"twilio_auth_token": "stolen"}), "wire-sms-3")
    assert not out.ok and not out.retryable and out.error.startswith("HTTP 401: ")


def test_a_provider_slower_than_the_clients_timeout_is_a_retryable_fault(settings: NotifySettings,
                                                                        fakes: dict[str, str]) -> None:
    faults(fakes["sms"], latency={"median_ms": 1000, "p95_ms": 1000})
    payload = {"to": "+15550100001", "body": "late"}
    out = with_session(lambda s: Sms(settings).send(s, payload, "wire-sms-4"), timeout_s=0.2)
    assert not out.ok and out.retryable and out.provider_fault and out.error.startswith("TimeoutError")


def test_nothing_listening_is_a_retryable_fault(settings: NotifySettings) -> None:
    out = sms(settings.model_copy(update={"sms_base_url": f"http://127.0.0.1:{free_port()}"}), "wire-sms-5")
    assert not out.ok and out.retryable and out.provider_fault


def test_a_calendar_event_is_inserted_once_and_deleted_once(settings: NotifySettings, fakes: dict[str, str]) -> None:
    cal = Calendar(settings)

    async def work(session: aiohttp.ClientSession) -> list[Outcome]:
        return [await cal.insert(session, EVENT, "wire-cal-1"),
                await cal.insert(session, EVENT, "wire-cal-1"),  # redelivered: replayed
                await cal.insert(session, EVENT, "wire-cal-other"),  # another key, same id: Google's 409, done
                await cal.delete(session, EVENT, "wire-cal-1-del"),
                await cal.delete(session, EVENT, "wire-cal-2-del")]  # already gone (410): done

    before = state(fakes["calendar"])
    assert with_session(work) == [Outcome(True)] * 5
    after = state(fakes["calendar"])
    assert after["events"] == before["events"] and after["redeliveries"] - before["redeliveries"] == 1
    assert after["tokens_issued"] - before["tokens_issued"] == 1  # one token for all five calls


def test_an_expired_token_is_refreshed_once(settings: NotifySettings, fakes: dict[str, str]) -> None:
    cal = Calendar(settings)
    event = {**EVENT, "event_id": "bb0002"}

    async def work(session: aiohttp.ClientSession) -> tuple[Outcome, Outcome]:
        first = await cal.insert(session, event, "wire-cal-3")
        faults(fakes["calendar"], token_ttl_s=600)  # every token handed out so far expires now
        return first, await cal.delete(session, event, "wire-cal-3-del")

    before = state(fakes["calendar"])["tokens_issued"]
    assert with_session(work) == (Outcome(True), Outcome(True))
    assert state(fakes["calendar"])["tokens_issued"] - before == 2


def test_someone_elses_event_in_the_slot_is_flagged_and_the_event_still_made(settings: NotifySettings,
                                                                            fakes: dict[str, str]) -> None:
    faults(fakes["calendar"], conflict_rate=1.0)
    out = with_session(lambda s: Calendar(settings).insert(s, {**EVENT, "event_id": "bb0003"}, "wire-cal-4"))
    assert out == Outcome(True, conflict=True)


def test_a_refused_refresh_token_is_final(settings: NotifySettings) -> None:
    bad = settings.model_copy(update={"google_refresh_token": "revoked"})
    out = with_session(lambda s: Calendar(bad).insert(s, {**EVENT, "event_id": "bb0005"}, "wire-cal-5"))
    assert not out.ok and not out.retryable and out.error == 'HTTP 400: {"error":"invalid_grant"}'
