"""`bookbench check notifications`: the seed's Path B success criteria, end to end through the service, the outbox,
the dispatchers and the (fake) providers: book -> SMS within 30 s and a calendar event; cancel -> event deleted;
an SMS outage -> delivered after recovery, no duplicate event; token expiry -> refreshed; a conflicting calendar
event -> flagged. It needs the fake providers (it sets their faults), so it runs self-hosted or beside
`bookbench serve`, not against a deployment wired to the real services.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from bookbench import net
from bookbench.checks.base import CheckResult, CheckTarget, Timer, book_somewhere
from bookbench.target.client import AsyncCaller

SUITE = "notifications"
SMS_WITHIN_S = 30.0  # the seed: "SMS sends within 30 seconds"


async def _received(url: str, key: str) -> list[dict[str, Any]]:
    async with net.async_client(timeout=5) as c:
        resp = await c.get(f"{url}/_bookbench/received", params={"key": key})
        resp.raise_for_status()
        return list(resp.json())


async def _wait(predicate: Callable[[], Awaitable[bool]], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(0.2)
    return False


async def _faults(url: str, faults: dict[str, Any]) -> None:
    async with net.async_client(timeout=5) as c:
        (await c.put(f"{url}/_bookbench/faults", json=faults)).raise_for_status()


async def _book_one(target: CheckTarget, caller: AsyncCaller) -> int:
    got, _ = await book_somewhere(target, caller, target.tenant(0))
    if got.kind != "booked":
        raise RuntimeError(f"bookClinicAppointment answered {got.describe()}")
    return int(got.appointment_id or 0)


async def run(target: CheckTarget) -> list[CheckResult]:
    if not target.providers:
        return [CheckResult(SUITE, "fake providers reachable", False,
                            "needs the fake SMS and calendar providers: run the checks self-hosted (no --base-url)")]
    sms, cal = target.providers["sms"], target.providers["calendar"]
    results = []
    async with target.client() as client:
        caller = target.caller(client)
        # 1. book -> an SMS within 30 s and a calendar event
        with Timer() as t:
            appt = await _book_one(target, caller)
            sms_ok = await _wait(lambda: _seen(sms, f"sms-confirm-{appt}"), SMS_WITHIN_S)
        cal_ok = await _wait(lambda: _seen(cal, f"bb{appt}"), SMS_WITHIN_S)
        results.append(CheckResult(SUITE, "booking sends an SMS within 30 s and creates a calendar event",
                                   sms_ok and cal_ok, f"appointment {appt}: SMS {'received' if sms_ok else 'MISSING'} "
                                   f"after {t.seconds:.1f} s; calendar event {'created' if cal_ok else 'MISSING'}",
                                   t.seconds))
        # 2. cancel -> the event is deleted (and a cancellation SMS)
        with Timer() as t:
            cancel = await caller.call("cancelAppointment", target.tenant(0), target.values(
                target.tenant(0), appointment=appt))
            deleted = cancel.kind == "ok" and await _wait(lambda: _seen(cal, f"bb{appt}-delete"), SMS_WITHIN_S)
            texted = await _wait(lambda: _seen(sms, f"sms-cancel-{appt}"), SMS_WITHIN_S)
        results.append(CheckResult(SUITE, "cancellation deletes the calendar event", deleted and texted,
                                   f"cancel -> {cancel.describe()}; event deleted: {deleted}; SMS: {texted}",
                                   t.seconds))
        # 3. the SMS gateway down for 3 s: nothing is sent during it, everything after, no duplicate event
        with Timer() as t:
            await _faults(sms, {"outages": [{"start_s": 0, "length_s": 3}]})
            appt = await _book_one(target, caller)
            early = await _seen(sms, f"sms-confirm-{appt}")
            later = await _wait(lambda: _seen(sms, f"sms-confirm-{appt}"), SMS_WITHIN_S)
            events = await _received(cal, f"bb{appt}")
            await _faults(sms, {})
        inserts = [e for e in events if not e.get("duplicate")]
        ok = later and not early and len(inserts) == 1
        results.append(CheckResult(
            SUITE, "SMS outage: delivered after recovery, no duplicate event", ok,
            f"during the outage: {'sent (should not be)' if early else 'held'}; after: "
            f"{'delivered' if later else 'MISSING'} in {t.seconds:.1f} s; calendar inserts: {len(inserts)}", t.seconds))
        # 4. calendar tokens expire after 1 s: the dispatcher refreshes and the event is still created
        with Timer() as t:
            await _faults(cal, {"token_ttl_s": 1})
            before = await _state(cal)
            first = await _book_one(target, caller)
            await _wait(lambda: _seen(cal, f"bb{first}"), SMS_WITHIN_S)
            await asyncio.sleep(1.5)
            second = await _book_one(target, caller)
            created = await _wait(lambda: _seen(cal, f"bb{second}"), SMS_WITHIN_S)
            refreshed = (await _state(cal))["tokens_issued"] - before["tokens_issued"]
            await _faults(cal, {})
        results.append(CheckResult(SUITE, "expired calendar token is refreshed", created and refreshed >= 1,
                                   f"event created after expiry: {created}; tokens issued meanwhile: {refreshed}",
                                   t.seconds))
        # 5. the calendar already holds someone's event in every slot: the booking stands, the event is flagged
        with Timer() as t:
            await _faults(cal, {"conflict_rate": 1.0})
            appt = await _book_one(target, caller)
            created = await _wait(lambda: _seen(cal, f"bb{appt}"), SMS_WITHIN_S)
            await _faults(cal, {})
            flagged = await _flagged(target, appt)
        results.append(CheckResult(SUITE, "conflicting calendar event is flagged", created and flagged is True,
                                   f"event created: {created}; outbox row flagged as conflict: {flagged}", t.seconds))
    return results


async def _seen(url: str, key: str) -> bool:
    return bool(await _received(url, key))


async def _state(url: str) -> dict[str, Any]:
    async with net.async_client(timeout=5) as c:
        resp = await c.get(f"{url}/_bookbench/state")
        resp.raise_for_status()
        return dict(resp.json())


async def _flagged(target: CheckTarget, appt: int) -> bool | None:
    if not target.dsn:
        return None
    conn = await asyncpg.connect(target.dsn)
    try:
        value = await conn.fetchval("SELECT conflict FROM notification_outbox WHERE dedup_key = $1", f"bb{appt}")
        return None if value is None else bool(value)
    finally:
        await conn.close()
