"""The seed's stress test: 10 concurrent bookings of one slot give exactly 1 success and 9 conflicts."""

from __future__ import annotations

import asyncio
import datetime as dt

from bookbench.checks.base import CheckResult, CheckTarget, Timer, book, free_slot, status_summary

CONCURRENT = 10


async def _one_round(target: CheckTarget, round_no: int, overlapping: bool) -> CheckResult:
    org = 1 + round_no % target.params.orgs
    provider = target.provider(org)
    async with target.client() as client:
        start = await free_slot(target, client, org, provider, span=3 if overlapping else 1)
        # "overlapping": 60-minute bookings starting on two different slots, [s, s+60) and [s+30, s+90), inside
        # three free slots. The lock is on (org, provider), not on the start time, so these must serialize just
        # like identical slots do.
        starts = [start + dt.timedelta(minutes=30 * (i % 2) if overlapping else 0) for i in range(CONCURRENT)]
        minutes = 60 if overlapping else 30
        with Timer() as t:
            responses = await asyncio.gather(
                *(book(target, client, org, target.contact(org), provider, s, minutes) for s in starts)
            )
    ok = sum(r.status_code == 201 for r in responses)
    conflicts = sum(r.status_code == 409 for r in responses)
    kind = "overlapping starts" if overlapping else "same slot"
    return CheckResult(
        "stress", f"{CONCURRENT} concurrent bookings, {kind} (round {round_no + 1})",
        ok == 1 and conflicts == CONCURRENT - 1,
        f"{ok} booked, {conflicts} conflicts ({status_summary(responses)}); expected 1 and {CONCURRENT - 1}",
        t.seconds,
    )


async def run(target: CheckTarget, repeat: int = 1) -> list[CheckResult]:
    results = []
    for i in range(repeat):
        results.append(await _one_round(target, i, overlapping=False))
        results.append(await _one_round(target, i, overlapping=True))
    return results
