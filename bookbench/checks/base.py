"""What every check shares: the target (URL, DSN, dataset layout, the bound profile), a result type with a skipped
state, and booking helpers that speak only through the target layer (bookbench.target)."""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from bookbench import net
from bookbench.config.dataset import DatasetParams
from bookbench.target.answers import Outcome
from bookbench.target.bind import bind
from bookbench.target.client import AsyncCaller, Target
from bookbench.target.pools import Id, Tenant

# The reference service's checks book far beyond the seeded horizon so that they never collide with generated
# appointments; another profile's grid says how far ahead it takes bookings.
_REFERENCE_DAYS = (200, 700)
SLOT_ATTEMPTS = 20


@dataclass
class CheckResult:
    suite: str
    name: str
    passed: bool
    detail: str
    seconds: float = 0.0
    # not run (not applicable to the profile, say): never a pass, and not a failure either
    skipped: bool = False

    @property
    def status(self) -> Literal["pass", "fail", "skipped"]:
        return "skipped" if self.skipped else "pass" if self.passed else "fail"


async def guarded(suite: str, name: str, check: Awaitable[CheckResult]) -> CheckResult:
    """One check of a suite; one that cannot run (no free slot found, the target unreachable) is that check
    failed with the reason, and the suite's other checks still run."""
    try:
        return await check
    except (httpx.HTTPError, OSError, RuntimeError) as exc:
        return CheckResult(suite, name, False, f"could not run: {type(exc).__name__}: {exc}")


def not_applicable(suite: str, profile: str, why: str) -> CheckResult:
    return CheckResult(suite, "not applicable", False, f"not applicable to profile {profile}: {why}", skipped=True)


@dataclass
class CheckTarget:
    base_url: str
    dsn: str | None
    params: DatasetParams
    rng: random.Random = field(default_factory=random.Random)
    # the fake providers' base URLs ({"sms": ..., "calendar": ...}) when bookbench runs them (self-hosted)
    providers: dict[str, str] | None = None
    # the database preflight and audit read: the one the user named with --dsn, when the other suites write to a
    # scratch database beside it (None: `dsn`)
    database_dsn: str | None = None
    # True when bookbench seeded this database for the checks (its rows may be booked, cancelled and compared);
    # False for someone's deployment, where the hostile suite only uses ids that cannot exist
    scratch: bool = False
    # the service's log when bookbench started the service (the hostile suite looks for tracebacks in it)
    service_log: Path | None = None
    # the profile the checks speak through, bound to its tenants; None: reference-rest over `params`
    api: Target | None = None

    def bound(self) -> Target:
        if self.api is None:
            self.api = bind(None, "rest", self.params)
        return self.api

    @property
    def reference(self) -> bool:
        return self.bound().profile.reference

    @property
    def profile_name(self) -> str:
        return self.bound().profile.name

    def tenant(self, index: int = 0) -> Tenant:
        tenants = self.bound().tenants
        return tenants[index % len(tenants)]

    def client(self) -> httpx.AsyncClient:
        # a 3xx is the service's answer (a failed check naming its status), never a hop to a host the loopback
        # rule would refuse: net's clients never follow one
        return net.async_client(base_url=self.base_url, timeout=self.bound().profile.timeout_s,
                                limits=httpx.Limits(max_connections=64, max_keepalive_connections=64))

    def caller(self, client: httpx.AsyncClient) -> AsyncCaller:
        return AsyncCaller(self.bound(), client)

    def days(self) -> tuple[int, int]:
        return _REFERENCE_DAYS if self.reference else self.bound().profile.grid.days_ahead

    def values(self, tenant: Tenant, start: dt.datetime | None = None, minutes: int | None = None,
               contact: Id | None = None, provider: Id | None = None,
               appointment: Id | None = None) -> dict[str, Any]:
        """One call's placeholder values; `minutes` overrides the grid's slot length (longer bookings)."""
        api = self.bound()
        values = api.values(tenant, self.rng, start=start or api.slot(self.rng, self.days()), contact=contact,
                            provider=provider, appointment=appointment)
        if minutes is not None:
            values["duration"] = minutes
            values["end"] = values["start"] + dt.timedelta(minutes=minutes)
        return values

    def random_start(self, span: int = 1) -> dt.datetime:
        """A grid slot far ahead with `span` slots of the same day after it (inside opening hours)."""
        api = self.bound()
        grid = api.profile.grid
        step = dt.timedelta(minutes=grid.slot_minutes)
        for _ in range(100):
            start = api.slot(self.rng, self.days())
            local = start.astimezone(api.zone)
            closes = dt.datetime.combine(local.date(), dt.time.fromisoformat(grid.closes), tzinfo=api.zone)
            if local + span * step <= closes:
                return start
        return start


async def book_somewhere(target: CheckTarget, caller: AsyncCaller, tenant: Tenant, provider: Id | None = None,
                         span: int = 1, attempts: int = SLOT_ATTEMPTS) -> tuple[Outcome, dict[str, Any]]:
    """Book `span` grid slots on a random far day, another day while the answer is slot_taken; the last answer
    and the values it was asked with."""
    provider = provider if provider is not None else target.rng.choice(tenant.providers)
    minutes = span * target.bound().profile.grid.slot_minutes
    for _ in range(attempts):
        values = target.values(tenant, target.random_start(span), minutes=minutes, provider=provider)
        outcome = await caller.call("bookClinicAppointment", tenant, values)
        if outcome.kind != "slot_taken":
            return outcome, values
    return outcome, values


async def free_slot(target: CheckTarget, caller: AsyncCaller, tenant: Tenant, provider: Id, span: int = 1
                    ) -> dt.datetime:
    """The start of `span` consecutive grid slots the target itself showed free: booked once and cancelled
    (without a cancel operation: a random far slot, unproven)."""
    if not target.bound().has("cancelAppointment"):
        return target.random_start(span)
    outcome, values = await book_somewhere(target, caller, tenant, provider, span)
    if outcome.kind != "booked":
        raise RuntimeError(f"no free slot found for provider {provider}: bookClinicAppointment answered "
                           f"{outcome.describe()}")
    cancel = await caller.call("cancelAppointment", tenant, {**values, "appointment": outcome.appointment_id})
    if cancel.kind != "ok":
        raise RuntimeError(f"the probe booking {outcome.appointment_id} could not be cancelled: cancelAppointment "
                           f"answered {cancel.describe()}")
    start: dt.datetime = values["start"]
    return start


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *_: object) -> None:
        self.seconds = time.perf_counter() - self.start


def outcome_summary(outcomes: Iterable[Outcome]) -> str:
    """"9x slot_taken, 1x booked": how a batch of answers was read."""
    counts: dict[str, int] = {}
    for o in outcomes:
        key = o.kind if not o.status else f"{o.kind} (HTTP {o.status})"
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{n}x {kind}" for kind, n in sorted(counts.items()))
