"""The hostile suite on someone's deployment: ids proven absent by a read before anything is written, and after
the suite, proof that nothing changed (it intends no change there at all); a change it cannot rule out is a FAIL.

Every valid bigint may be a row id, so an id is usable only when a read answered "not found" for it with every
key the probes send: contacts and providers through the API (the upcoming and availability reads), appointments
only through the database (`--dsn`; no API read names an appointment, so without it no cancel names a valid id).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterable
from dataclasses import dataclass, field

import asyncpg
import httpx
import orjson

from bookbench.checks.base import CheckResult
from bookbench.checks.hostile_ids import MAX_ID, Absent
from bookbench.checks.hostile_inputs import Layout
from bookbench.config.dataset import DatasetParams, api_key
from bookbench.db.conn import run_with

CANDIDATES = 3  # ids tried per kind
SAMPLE_CONTACTS = 10  # per key's org: their upcoming appointment is re-read when there is no --dsn
# the rows a hostile value would most likely name: boundaries and their neighbours (read with --dsn)
_WATCHED = sorted({v + d for v in (1, 4, 5, 29, 31, 240, 241, 2**31, 2**32, 2**53, 2**62, MAX_ID)
                   for d in (-1, 0, 1) if 0 < v + d <= MAX_ID})
_NOT_FOUND = {"contact": "contact_not_found", "provider": "provider_not_found"}


def _read(client: httpx.Client, kind: str, ident: int, org: int, params: DatasetParams) -> httpx.Response:
    headers = {"Authorization": f"Bearer {api_key(org, params.key_secret)}"}
    if kind == "contact":
        return client.get(f"/api/v1/contacts/{ident}/appointments/upcoming", headers=headers)
    day = (dt.date.today() + dt.timedelta(days=1)).isoformat()
    return client.get(f"/api/v1/providers/{ident}/availability", params={"date": day}, headers=headers)


def _says_absent(resp: httpx.Response, kind: str) -> bool:
    """A 404 naming the missing row (not an unknown route), or a 401: a key that is refused cannot write."""
    if resp.status_code == 401:
        return True
    try:
        return resp.status_code == 404 and orjson.loads(resp.content).get("error") == _NOT_FOUND[kind]
    except (orjson.JSONDecodeError, AttributeError):
        return False


def _absent_by_api(client: httpx.Client, layout: Layout, kind: str, candidates: Iterable[int]) -> tuple[int, ...]:
    return tuple(c for c in candidates
                 if all(_says_absent(_read(client, kind, c, org, layout.params), kind) for org in layout.key_orgs()))


def _absent_in_db(dsn: str, table: str, candidates: tuple[int, ...]) -> tuple[int, ...]:
    async def present(conn: asyncpg.Connection) -> set[int]:
        rows = await conn.fetch(f"SELECT id FROM {table} WHERE id = ANY($1::bigint[])", list(candidates))
        return {r["id"] for r in rows}

    found = run_with(dsn, present)
    return tuple(c for c in candidates if c not in found)


def prove_absent(client: httpx.Client, layout: Layout, rng: random.Random, dsn: str | None) -> Absent:
    """Random ids over the whole range, kept only where a read proves them absent. Multiples of 2^32, so that a
    server wrapping ids to 32 bits reads 0 (no row), and exact as doubles (k < 2^31), so that one reading them as
    floats reads the same id: every reading of such an id is itself or nothing."""
    def draw() -> tuple[int, ...]:
        return tuple(rng.randrange(2, 2**31) * 2**32 for _ in range(CANDIDATES))

    contacts = _absent_by_api(client, layout, "contact", draw())
    providers = _absent_by_api(client, layout, "provider", draw())
    appointments = _absent_in_db(dsn, "appointments", draw()) if dsn else ()
    if dsn:  # the API answered for the keys; the database for every tenant
        contacts, providers = _absent_in_db(dsn, "contacts", contacts), _absent_in_db(dsn, "providers", providers)
    return Absent(contacts, providers, appointments)


def still_absent(client: httpx.Client, layout: Layout, dsn: str | None) -> list[str]:
    """The proven-absent ids that exist now (one the suite wrote to would have been created in between)."""
    absent = layout.absent
    gone = [f"contact {c}" for c in absent.contacts if c not in _absent_by_api(client, layout, "contact", [c])]
    gone += [f"provider {p}" for p in absent.providers if p not in _absent_by_api(client, layout, "provider", [p])]
    if dsn:
        kept = _absent_in_db(dsn, "appointments", absent.appointments)
        gone += [f"appointment {a}" for a in absent.appointments if a not in kept]
    return gone


# --- what the deployment looked like, before and after -------------------------------------------------------------

State = dict[str, str]

_AGGREGATES = {
    "appointments": "SELECT count(*)::text FROM appointments",
    "appointment ids (min, max)": "SELECT concat_ws(', ', min(id), max(id)) FROM appointments",
    "appointments by status": "SELECT coalesce(string_agg(status || ' ' || n, ', ' ORDER BY status), '') "
                              "FROM (SELECT status, count(*) AS n FROM appointments GROUP BY status) s",
    "contacts": "SELECT concat_ws(', ', count(*), max(id)) FROM contacts",
    "providers": "SELECT concat_ws(', ', count(*), max(id)) FROM providers",
}


def _db_state(dsn: str) -> State:
    """Aggregates (one scan of appointments) and the full rows at the boundary ids and the 50 highest ids."""
    async def take(conn: asyncpg.Connection) -> State:
        async with conn.transaction(readonly=True):
            state = {name: str(await conn.fetchval(sql)) for name, sql in _AGGREGATES.items()}
            if await conn.fetchval("SELECT to_regclass('notification_outbox') IS NOT NULL"):
                state["notification outbox"] = str(await conn.fetchval(
                    "SELECT concat_ws(', ', count(*), max(id)) FROM notification_outbox"))
            rows = await conn.fetch(
                "SELECT id, md5(a::text) AS digest FROM appointments a WHERE id = ANY($1::bigint[]) "
                "UNION SELECT id, md5(a::text) FROM (SELECT * FROM appointments ORDER BY id DESC LIMIT 50) a",
                _WATCHED)
            state.update({f"appointment {r['id']}": r["digest"] for r in rows})
            return state

    return run_with(dsn, take)


def _api_state(client: httpx.Client, layout: Layout) -> State:
    """What the API can read: the upcoming appointment of a sample of each key's contacts."""
    state: State = {}
    for org in layout.key_orgs():
        for contact in layout.params.contacts_of(org)[:SAMPLE_CONTACTS]:
            resp = _read(client, "contact", contact, org, layout.params)
            state[f"upcoming of contact {contact} (org {org})"] = f"{resp.status_code} {resp.text[:300]}"
    return state


def _differences(before: State, after: State) -> list[str]:
    return [f"{key}: {before.get(key, '(none)')} -> {after.get(key, '(none)')}"
            for key in sorted(set(before) | set(after)) if before.get(key) != after.get(key)]


@dataclass
class Watch:
    """Taken before the suite sends anything; judged after."""

    dsn: str | None
    before: State = field(default_factory=dict)

    def start(self, client: httpx.Client, layout: Layout) -> None:
        self.before = _db_state(self.dsn) if self.dsn else _api_state(client, layout)

    def verdicts(self, client: httpx.Client, layout: Layout, writes: list[str]) -> list[CheckResult]:
        absent = layout.absent
        proven = (f"ids proven absent: {len(absent.contacts)} contacts, {len(absent.providers)} providers, "
                  f"{len(absent.appointments)} appointments")
        if not self.dsn:
            proven += " (no read proves an appointment id absent without --dsn: no cancel named a valid id)"
        results = [CheckResult("hostile", "deployment: no write was accepted", not writes,
                               "; ".join(writes[:5]) if writes else f"no booking or cancellation succeeded; {proven}")]
        gone = still_absent(client, layout, self.dsn)
        results.append(CheckResult("hostile", "deployment: ids proven absent are still absent", not gone,
                                   f"now present: {', '.join(gone)}" if gone else proven))
        after = _db_state(self.dsn) if self.dsn else _api_state(client, layout)
        changed = _differences(self.before, after)
        what = ("the database (--dsn): appointment counts by status, id range, boundary and newest rows, "
                "tenants, outbox" if self.dsn else
                f"what the API reads: the upcoming appointment of {len(self.before)} contacts (pass --dsn to "
                "compare the database)")
        detail = (f"changed during the check (a FAIL even if another client did it: run in a quiet window): "
                  f"{'; '.join(changed[:8])}" if changed else f"compared {what}: unchanged")
        results.append(CheckResult("hostile", "deployment: nothing changed", not changed, detail))
        return results
