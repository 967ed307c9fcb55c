"""The seed's smoke suite (3 tests) and UAT suite (4 tests), played over HTTP against the service."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx

from bookbench.checks.base import CheckResult, CheckTarget, Timer, book, free_slot, status_summary

UAT_LATENCY_LIMIT_MS = 500.0


async def _distinct_slots(target: CheckTarget, client: httpx.AsyncClient, org: int, n: int
                          ) -> list[tuple[int, dt.datetime]]:
    """n (provider, start) pairs on different providers/days, each reported free."""
    pairs: list[tuple[int, dt.datetime]] = []
    for i in range(n):
        provider = target.provider(org, i)
        start = await free_slot(target, client, org, provider)
        while any(p == provider and s == start for p, s in pairs):
            start = await free_slot(target, client, org, provider)
        pairs.append((provider, start))
    return pairs


async def basic_booking(target: CheckTarget, suite: str) -> CheckResult:
    org = 1
    async with target.client() as client:
        provider = target.provider(org)
        contact = target.contact(org)
        start = await free_slot(target, client, org, provider)
        with Timer() as t:
            resp = await book(target, client, org, contact, provider, start)
        ok = resp.status_code == 201
        detail = f"POST /api/v1/appointments -> {resp.status_code}"
        if ok:
            # the booking must be visible to the same tenant right after it was acknowledged
            again = await book(target, client, org, contact, provider, start)
            ok = again.status_code == 409
            detail += f"; same slot again -> {again.status_code} (expected 409)"
    return CheckResult(suite, "basic appointment booking", ok, detail, t.seconds)


async def concurrent_distinct(target: CheckTarget, suite: str, n: int) -> CheckResult:
    org = 1
    async with target.client() as client:
        pairs = await _distinct_slots(target, client, org, n)
        with Timer() as t:
            responses = await asyncio.gather(
                *(book(target, client, org, target.contact(org), p, s) for p, s in pairs)
            )
    ok = all(r.status_code == 201 for r in responses)
    return CheckResult(suite, f"{n} concurrent bookings of different slots", ok,
                       f"{status_summary(responses)}; expected {n}x201", t.seconds)


async def isolation(target: CheckTarget, suite: str, clinics: int = 2) -> CheckResult:
    """Each clinic books; no other clinic can read, cancel or book against that clinic's records."""
    clinics = min(clinics, target.params.orgs)
    if clinics < 2:
        return CheckResult(suite, "organization data isolation", False, "needs a dataset with >= 2 orgs")
    problems: list[str] = []
    with Timer() as t:
        async with target.client() as client:
            booked: dict[int, tuple[int, int]] = {}
            for org in range(1, clinics + 1):
                provider, contact = target.provider(org), target.contact(org)
                start = await free_slot(target, client, org, provider)
                resp = await book(target, client, org, contact, provider, start)
                if resp.status_code != 201:
                    problems.append(f"org {org} could not book its own slot ({resp.status_code})")
                    continue
                booked[org] = (contact, resp.json()["appointment_id"])
            for owner, (contact, appt) in booked.items():
                intruder = owner % clinics + 1
                h = target.headers(intruder)
                probes = {
                    "read contact": await client.get(f"/api/v1/contacts/{contact}/appointments/upcoming", headers=h),
                    "cancel appointment": await client.post(f"/api/v1/appointments/{appt}/cancel", headers=h),
                    "book for contact": await book(target, client, intruder, contact,
                                                   target.provider(intruder), await free_slot(
                                                       target, client, intruder, target.provider(intruder))),
                }
                for what, resp in probes.items():
                    if resp.status_code != 404:
                        problems.append(f"org {intruder} could {what} of org {owner} ({resp.status_code})")
                mine = await client.get(f"/api/v1/contacts/{contact}/appointments/upcoming",
                                        headers=target.headers(owner))
                if mine.status_code != 200:
                    problems.append(f"org {owner} lost access to its own contact ({mine.status_code})")
    detail = "; ".join(problems) if problems else f"{clinics} clinics, 3 cross-tenant probes each: all 404"
    return CheckResult(suite, "organization data isolation" if clinics == 2 else "multi-clinic isolation",
                       not problems, detail, t.seconds)


async def single_request_latency(target: CheckTarget, suite: str) -> CheckResult:
    org = 1
    async with target.client() as client:
        provider = target.provider(org)
        start = await free_slot(target, client, org, provider)
        with Timer() as t:
            resp = await book(target, client, org, target.contact(org), provider, start)
    ms = t.seconds * 1000
    ok = resp.status_code == 201 and ms < UAT_LATENCY_LIMIT_MS
    return CheckResult(suite, f"performance validation (< {UAT_LATENCY_LIMIT_MS:.0f} ms)", ok,
                       f"one booking took {ms:.1f} ms ({resp.status_code})", t.seconds)


async def run_smoke(target: CheckTarget) -> list[CheckResult]:
    return [
        await basic_booking(target, "smoke"),
        await concurrent_distinct(target, "smoke", 3),
        await isolation(target, "smoke", clinics=2),
    ]


async def run_uat(target: CheckTarget) -> list[CheckResult]:
    return [
        await basic_booking(target, "uat"),
        await concurrent_distinct(target, "uat", 5),
        await isolation(target, "uat", clinics=3),
        await single_request_latency(target, "uat"),
    ]
