"""What every check shares: the target (URL, DSN, dataset layout), a result type, and booking helpers."""

from __future__ import annotations

import datetime as dt
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bookbench.spec.dataset import DatasetParams, api_key

# Checks book far beyond the seeded horizon so that they never collide with generated appointments.
_CHECK_DAYS = (200, 700)


@dataclass
class CheckResult:
    suite: str
    name: str
    passed: bool
    detail: str
    seconds: float = 0.0


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

    def headers(self, org_id: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {api_key(org_id, self.params.key_secret)}"}

    def contact(self, org_id: int) -> int:
        return self.rng.choice(self.params.contacts_of(org_id))

    def provider(self, org_id: int, index: int | None = None) -> int:
        providers = self.params.providers_of(org_id)
        return providers[index % len(providers)] if index is not None else self.rng.choice(providers)

    def client(self) -> httpx.AsyncClient:
        # a 3xx is the service's answer (a failed check naming its status), never a hop to a host the loopback
        # rule would refuse; httpx does not follow by default, said here so that no upgrade or edit changes it
        return httpx.AsyncClient(base_url=self.base_url, timeout=10.0, follow_redirects=False,
                                 limits=httpx.Limits(max_connections=64, max_keepalive_connections=64))


async def free_slot(target: CheckTarget, client: httpx.AsyncClient, org_id: int, provider_id: int,
                    attempts: int = 20, span: int = 1) -> dt.datetime:
    """The start of `span` consecutive 30-minute slots the service itself reports free, on a random far-future
    day."""
    for _ in range(attempts):
        day = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=target.rng.randint(*_CHECK_DAYS))
        resp = await client.get(f"/api/v1/providers/{provider_id}/availability", params={"date": day.isoformat()},
                                headers=target.headers(org_id))
        resp.raise_for_status()
        free = {dt.datetime.fromisoformat(slot["start"]) for slot in resp.json()["free_slots"]}
        step = dt.timedelta(minutes=30)
        starts = sorted(s for s in free if all(s + k * step in free for k in range(span)))
        if starts:
            return target.rng.choice(starts)
    raise RuntimeError(f"no {span} free slot(s) in a row found for provider {provider_id} after {attempts} days "
                       "tried")


def booking_body(contact_id: int, provider_id: int, start: dt.datetime, minutes: int = 30) -> dict[str, Any]:
    return {"contactId": contact_id, "providerId": provider_id, "start": start.isoformat(),
            "durationMinutes": minutes}


async def book(target: CheckTarget, client: httpx.AsyncClient, org_id: int, contact_id: int, provider_id: int,
               start: dt.datetime, minutes: int = 30) -> httpx.Response:
    return await client.post("/api/v1/appointments", json=booking_body(contact_id, provider_id, start, minutes),
                             headers=target.headers(org_id))


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *_: object) -> None:
        self.seconds = time.perf_counter() - self.start


def status_summary(responses: list[httpx.Response]) -> str:
    counts: dict[int, int] = {}
    for r in responses:
        counts[r.status_code] = counts.get(r.status_code, 0) + 1
    return ", ".join(f"{n}x{code}" for code, n in sorted(counts.items()))
