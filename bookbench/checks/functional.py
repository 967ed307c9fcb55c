"""The seed's smoke suite and UAT suite, played through the target layer against any profile: every request and
every reading of an answer is the profile's (bookbench.target)."""

from __future__ import annotations

import asyncio
from typing import Any

from bookbench.checks.base import (
    CheckResult,
    CheckTarget,
    Timer,
    book_somewhere,
    free_slot,
    guarded,
    outcome_summary,
)
from bookbench.target.answers import Outcome
from bookbench.target.client import AsyncCaller
from bookbench.target.pools import Tenant

UAT_LATENCY_LIMIT_MS = 500.0
# answers that say "you may not" (another clinic's record, a cancelled appointment): the layer's reading
REFUSALS = frozenset({"not_found", "refused"})
UNKNOWN = frozenset({"error", "unclassified"})
# what each operation must answer once, in order (the booking's id feeds the cancel)
EXPECTED = {"checkAvailability": "ok", "lookupUpcomingAppointment": "ok", "bookClinicAppointment": "booked",
            "cancelAppointment": "ok"}


async def operations_once(target: CheckTarget, suite: str) -> CheckResult:
    """Every operation the profile defines answers as the profile expects, once."""
    api = target.bound()
    tenant = target.tenant(0)
    seen: list[str] = []
    bad: list[str] = []
    with Timer() as t:
        async with target.client() as client:
            caller = target.caller(client)
            values = target.values(tenant)
            for op, want in EXPECTED.items():
                if not api.has(op):
                    seen.append(f"{op}: not in the profile")
                    continue
                if op == "bookClinicAppointment":
                    got, values = await book_somewhere(target, caller, tenant)
                else:
                    got = await caller.call(op, tenant, values)
                if op == "bookClinicAppointment" and got.kind == "booked":
                    values = {**values, "appointment": got.appointment_id}
                seen.append(f"{op}: {got.describe()}")
                if got.kind != want:
                    bad.append(f"{op} answered {got.describe()}, expected {want}")
                    if op == "bookClinicAppointment":
                        break  # no id to cancel
    detail = "; ".join(bad) if bad else "; ".join(seen)
    return CheckResult(suite, "every operation answers as the profile expects", not bad, detail, t.seconds)


async def basic_booking(target: CheckTarget, suite: str) -> CheckResult:
    tenant = target.tenant(0)
    async with target.client() as client:
        caller = target.caller(client)
        provider = target.rng.choice(tenant.providers)
        start = await free_slot(target, caller, tenant, provider)
        values = target.values(tenant, start, provider=provider)
        with Timer() as t:
            got = await caller.call("bookClinicAppointment", tenant, values)
        ok = got.kind == "booked"
        detail = f"bookClinicAppointment -> {got.describe()}"
        if ok:
            # the booking must be visible to the same tenant right after it was acknowledged
            again = await caller.call("bookClinicAppointment", tenant, values)
            ok = again.kind == "slot_taken"
            detail += f"; same slot again -> {again.describe()} (expected slot_taken)"
    return CheckResult(suite, "basic appointment booking", ok, detail, t.seconds)


async def concurrent_distinct(target: CheckTarget, suite: str, n: int) -> CheckResult:
    tenant = target.tenant(0)
    async with target.client() as client:
        caller = target.caller(client)
        pairs: list[tuple[Any, Any]] = []
        calls = []
        for i in range(n):
            provider = tenant.providers[i % len(tenant.providers)]
            start = await free_slot(target, caller, tenant, provider)
            while (provider, start) in pairs:
                start = await free_slot(target, caller, tenant, provider)
            pairs.append((provider, start))
            calls.append(target.values(tenant, start, provider=provider))
        with Timer() as t:
            outcomes = await asyncio.gather(*(caller.call("bookClinicAppointment", tenant, v) for v in calls))
    ok = all(o.kind == "booked" for o in outcomes)
    return CheckResult(suite, f"{n} concurrent bookings of different slots", ok,
                       f"{outcome_summary(outcomes)}; expected {n}x booked", t.seconds)


async def _probe_isolation(target: CheckTarget, caller: AsyncCaller, owner: Tenant, intruder: Tenant,
                           booked: Outcome, values: dict[str, Any]) -> list[str]:
    """What went wrong when `intruder` reads, cancels and books against `owner`'s contact and appointment."""
    problems: list[str] = []
    api = target.bound()
    contact = values["contact"]
    theirs = target.values(intruder, contact=contact, appointment=booked.appointment_id)
    if api.has("lookupUpcomingAppointment"):
        read = await caller.call("lookupUpcomingAppointment", intruder, theirs)
        # a filtered read may answer an empty ok (row-level security); an unknown answer proves nothing
        if read.kind in UNKNOWN:
            problems.append(f"tenant {intruder.id} reading a contact of tenant {owner.id}: {read.describe()}")
    if api.has("cancelAppointment"):
        cancel = await caller.call("cancelAppointment", intruder, theirs)
        # the booking must still stand: the owner's same slot is still taken
        still = await caller.call("bookClinicAppointment", owner, values)
        if cancel.kind in UNKNOWN or still.kind != "slot_taken":
            problems.append(f"tenant {intruder.id} cancelling appointment {booked.appointment_id} of tenant "
                            f"{owner.id}: {cancel.describe()}; the owner's slot then: {still.describe()}")
    book = await caller.call("bookClinicAppointment", intruder, target.values(intruder, contact=contact))
    if book.kind == "booked" or book.kind in UNKNOWN:
        problems.append(f"tenant {intruder.id} booking for a contact of tenant {owner.id}: {book.describe()}")
    if api.has("lookupUpcomingAppointment"):
        mine = await caller.call("lookupUpcomingAppointment", owner, values)
        if mine.kind != "ok":
            problems.append(f"tenant {owner.id} reading its own contact: {mine.describe()}")
    return problems


async def isolation(target: CheckTarget, suite: str, clinics: int = 2) -> CheckResult:
    """Each clinic books; no other clinic can cancel or book against that clinic's records, or read them with
    an answer the profile cannot read."""
    clinics = min(clinics, len(target.bound().tenants))
    if clinics < 2:
        return CheckResult(suite, "organization data isolation", False, "needs a profile with >= 2 tenants")
    problems: list[str] = []
    with Timer() as t:
        async with target.client() as client:
            caller = target.caller(client)
            booked: dict[int, tuple[Outcome, dict[str, Any]]] = {}
            for i in range(clinics):
                got, values = await book_somewhere(target, caller, target.tenant(i))
                if got.kind != "booked":
                    problems.append(f"tenant {target.tenant(i).id} could not book its own slot ({got.describe()})")
                    continue
                booked[i] = (got, values)
            for i, (got, values) in booked.items():
                problems += await _probe_isolation(target, caller, target.tenant(i),
                                                   target.tenant((i + 1) % clinics), got, values)
    detail = "; ".join(problems) if problems else (f"{clinics} tenants, 3 cross-tenant probes each: none read, "
                                                   "cancelled or booked another tenant's records")
    return CheckResult(suite, "organization data isolation" if clinics == 2 else "multi-clinic isolation",
                       not problems, detail, t.seconds)


async def booking_lifecycle(target: CheckTarget, suite: str) -> CheckResult:
    """Book; the same slot again is slot_taken; another tenant cannot cancel it; the owner can, once."""
    owner, other = target.tenant(0), target.tenant(1)
    steps: list[tuple[str, Outcome, bool]] = []
    with Timer() as t:
        async with target.client() as client:
            caller = target.caller(client)
            got, values = await book_somewhere(target, caller, owner)
            steps.append(("book", got, got.kind == "booked"))
            if got.kind == "booked":
                again = await caller.call("bookClinicAppointment", owner, values)
                steps.append(("same slot again", again, again.kind == "slot_taken"))
                mine = {**values, "appointment": got.appointment_id}
                if target.bound().has("cancelAppointment"):
                    if other.id != owner.id:
                        theirs = target.values(other, appointment=got.appointment_id)
                        stolen = await caller.call("cancelAppointment", other, theirs)
                        steps.append((f"cancel by tenant {other.id}", stolen, stolen.kind in REFUSALS))
                    cancel = await caller.call("cancelAppointment", owner, mine)
                    steps.append(("cancel", cancel, cancel.kind == "ok"))
                    twice = await caller.call("cancelAppointment", owner, mine)
                    steps.append(("cancel again", twice, twice.kind in REFUSALS))
    ok = all(good for _, _, good in steps)
    detail = "; ".join(f"{what} -> {o.describe()}" + ("" if good else " (WRONG)") for what, o, good in steps)
    return CheckResult(suite, "booking lifecycle (book, taken, cancel once, others cannot)", ok, detail, t.seconds)


async def single_request_latency(target: CheckTarget, suite: str) -> CheckResult:
    tenant = target.tenant(0)
    async with target.client() as client:
        caller = target.caller(client)
        provider = target.rng.choice(tenant.providers)
        start = await free_slot(target, caller, tenant, provider)
        values = target.values(tenant, start, provider=provider)
        with Timer() as t:
            got = await caller.call("bookClinicAppointment", tenant, values)
    ms = t.seconds * 1000
    ok = got.kind == "booked" and ms < UAT_LATENCY_LIMIT_MS
    return CheckResult(suite, f"performance validation (< {UAT_LATENCY_LIMIT_MS:.0f} ms)", ok,
                       f"one booking took {ms:.1f} ms ({got.describe()})", t.seconds)


async def run_smoke(target: CheckTarget) -> list[CheckResult]:
    s = "smoke"
    return [
        await guarded(s, "every operation answers as the profile expects", operations_once(target, s)),
        await guarded(s, "basic appointment booking", basic_booking(target, s)),
        await guarded(s, "3 concurrent bookings of different slots", concurrent_distinct(target, s, 3)),
        await guarded(s, "organization data isolation", isolation(target, s, clinics=2)),
    ]


async def run_uat(target: CheckTarget) -> list[CheckResult]:
    s = "uat"
    # the reference service keeps the seed's four UAT checks; another profile shows the whole lifecycle first
    first = (guarded(s, "basic appointment booking", basic_booking(target, s)) if target.reference else
             guarded(s, "booking lifecycle (book, taken, cancel once, others cannot)", booking_lifecycle(target, s)))
    return [
        await first,
        await guarded(s, "5 concurrent bookings of different slots", concurrent_distinct(target, s, 5)),
        await guarded(s, "multi-clinic isolation", isolation(target, s, clinics=3)),
        await guarded(s, f"performance validation (< {UAT_LATENCY_LIMIT_MS:.0f} ms)",
                      single_request_latency(target, s)),
    ]
