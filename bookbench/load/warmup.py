"""The warm-up before the first scenario: the operations the task mix sends, through the run's target profile,
from many connections at once, so that every pooled connection prepares its statements. It is also where a
profile that cannot work stops the run: an answer no rule reads, a 401, a refused template, a redirect."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

import httpx

from bookbench import net
from bookbench.config.scenarios import TaskMix
from bookbench.errors import ServiceError
from bookbench.target.answers import Outcome
from bookbench.target.client import AsyncCaller, Target
from bookbench.target.profile import OPERATIONS

WARMUP_REQUESTS = 150  # ~2 per statement per pooled connection; at 60 ms a request without indexes, ~5 s
WARMUP_CONCURRENCY = 24  # >= the service's pool size, so that every pooled connection prepares its statements
# answers that say the profile (or the target) cannot work: nothing is measured on top of them
_FATAL_STATUS = frozenset({401, 403, 422})


@dataclass
class WarmUp:
    sent: int = 0
    booked: list[int | str] = field(default_factory=list)
    outcomes: dict[str, dict[str, int]] = field(default_factory=dict)  # operation -> outcome kind -> count


def _fatal(outcome: Outcome) -> bool:
    return (outcome.kind in ("error", "unclassified") or outcome.status in _FATAL_STATUS
            or 300 <= outcome.status < 400)


async def warm_up(base_url: str, target: Target, mix: TaskMix, requests: int = WARMUP_REQUESTS) -> WarmUp:
    """Send what the mix sends (a read-only mix never books; cancels only what the warm-up booked). Raises
    ServiceError naming the operation, what came back and how the profile read it when an answer is fatal."""
    ops = [op for op in OPERATIONS if mix.weights.get(op, 0) > 0 and target.has(op)]  # type: ignore[call-overload]
    rng = random.Random(1)
    sem = asyncio.Semaphore(WARMUP_CONCURRENCY)
    result = WarmUp()
    problems: list[str] = []

    async def one(caller: AsyncCaller, i: int) -> None:
        op = ops[i % len(ops)]
        tenant = target.tenants[i % len(target.tenants)]
        if op == "cancelAppointment":
            if not result.booked:
                return  # like a caller: nothing booked yet, nothing to cancel
            values = target.values(tenant, rng, appointment=result.booked[-1])
        else:
            values = target.values(tenant, rng)
        async with sem:
            outcome = await caller.call(op, tenant, values)
        result.sent += 1
        counts = result.outcomes.setdefault(op, {})
        counts[outcome.kind] = counts.get(outcome.kind, 0) + 1
        if outcome.kind == "booked" and outcome.appointment_id is not None:
            result.booked.append(outcome.appointment_id)
        if _fatal(outcome):
            problems.append(f"{op} answered {outcome.describe()}")

    # net never follows a redirect: a 3xx from the target is an answer, and never a way off loopback
    async with net.async_client(base_url=base_url, timeout=target.profile.timeout_s,
                                 limits=httpx.Limits(max_connections=WARMUP_CONCURRENCY)) as client:
        caller = AsyncCaller(target, client)
        await asyncio.gather(*(one(caller, i) for i in range(requests)))
    if problems:
        hint = ("bookbench never follows redirects: point --target-url at the address that answers"
                if any(" (HTTP 3" in p for p in problems) else
                f"check the answers rules of profile {target.profile.name}, its auth, and --target-url")
        raise ServiceError(f"warm-up failed: {len(problems)} of {result.sent} requests; first: {problems[0]} "
                           f"({hint})")
    return result
