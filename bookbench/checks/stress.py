"""The seed's stress test through the target layer: 10 concurrent bookings of one slot give exactly 1 booked and
9 slot_taken, for identical starts and for overlapping ones."""

from __future__ import annotations

import asyncio
import datetime as dt

from bookbench.checks.base import CheckResult, CheckTarget, Timer, free_slot, guarded, outcome_summary

CONCURRENT = 10


async def _one_round(target: CheckTarget, round_no: int, overlapping: bool) -> CheckResult:
    tenant = target.tenant(round_no)
    provider = target.rng.choice(tenant.providers)
    slot = target.bound().profile.grid.slot_minutes
    async with target.client() as client:
        caller = target.caller(client)
        start = await free_slot(target, caller, tenant, provider, span=3 if overlapping else 1)
        # "overlapping": two-slot bookings starting on two different slots, [s, s+2) and [s+1, s+3), inside
        # three free slots. The lock is on (org, provider), not on the start time, so these must serialize just
        # like identical slots do.
        starts = [start + dt.timedelta(minutes=slot * (i % 2) if overlapping else 0) for i in range(CONCURRENT)]
        minutes = 2 * slot if overlapping else slot
        calls = [target.values(tenant, s, minutes=minutes, provider=provider) for s in starts]
        with Timer() as t:
            outcomes = await asyncio.gather(*(caller.call("bookClinicAppointment", tenant, v) for v in calls))
    booked = sum(o.kind == "booked" for o in outcomes)
    taken = sum(o.kind == "slot_taken" for o in outcomes)
    kind = "overlapping starts" if overlapping else "same slot"
    return CheckResult(
        "stress", f"{CONCURRENT} concurrent bookings, {kind} (round {round_no + 1})",
        booked == 1 and taken == CONCURRENT - 1,
        f"{booked} booked, {taken} slot_taken ({outcome_summary(outcomes)}); expected 1 and {CONCURRENT - 1}",
        t.seconds,
    )


async def run(target: CheckTarget, repeat: int = 1) -> list[CheckResult]:
    results = []
    for i in range(repeat):
        for overlapping in (False, True):
            kind = "overlapping starts" if overlapping else "same slot"
            results.append(await guarded("stress", f"{CONCURRENT} concurrent bookings, {kind} (round {i + 1})",
                                         _one_round(target, i, overlapping)))
    return results
