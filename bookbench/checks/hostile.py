"""`bookbench check hostile`: generated hostile requests against every endpoint; no answer may be a 5xx, leak a
traceback, or change data the request was not allowed to change.

Hypothesis draws the requests (bookbench.checks.hostile_inputs) but does not judge them: every answer is tallied,
so one run counts all failures instead of stopping at the first. Bounded in count (--examples per endpoint) and
in time (a budget per endpoint); traffic goes only where `check` allows (loopback unless --allow-remote). Then the
HTTP-level probes (bookbench.checks.hostile_http). On someone's deployment every write names only ids a read
proved absent, a guard withholds any request that could name another, and the deployment is compared before and
after (bookbench.checks.hostile_deployment).
"""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing as mp
import queue
import re
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import orjson
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.errors import HypothesisWarning

from bookbench import net
from bookbench.checks import hostile_deployment, hostile_http
from bookbench.checks.base import CheckResult, CheckTarget
from bookbench.checks.hostile_ids import unsafe_ids
from bookbench.checks.hostile_inputs import ENDPOINTS, Layout, Probe, corpus, strategy
from bookbench.db.conn import run_with

SECONDS_PER_ENDPOINT = 120.0
_LEAKS = ("Traceback (most recent call last)", 'File "/', "asyncpg.exceptions", "Exception in ASGI")
_BOOKED = re.compile(r"Booked: appointment (\d+)")
_CANCELLED = re.compile(r"Cancelled appointment (\d+)")


@dataclass
class Tally:
    endpoint: str
    sent: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    failed: int = 0
    examples: list[str] = field(default_factory=list)  # the first few failing requests, for the report
    booked: set[int] = field(default_factory=set)
    cancelled: set[int] = field(default_factory=set)
    skipped: int = 0  # drawn but not sendable by the HTTP client (never reached the service)
    withheld: int = 0  # on a deployment: could name a row not proven absent, so never sent
    writes: list[str] = field(default_factory=list)  # every accepted booking or cancellation, described
    out_of_time: bool = False

    def fail(self, probe: Probe, why: str) -> None:
        self.failed += 1
        if len(self.examples) < 3:
            self.examples.append(f"{why}: {probe.describe()}")

    def statuses(self) -> str:
        return ", ".join(f"{n}x{code}" for code, n in sorted(self.by_status.items()))


def send(client: httpx.Client, probe: Probe) -> httpx.Response:
    return client.request(probe.method, probe.path, content=probe.body, headers=dict(probe.headers))


def problem(probe: Probe, resp: httpx.Response) -> str | None:
    """What is wrong with this answer to a hostile request, or None."""
    if 300 <= resp.status_code < 400:
        return None  # a redirect (a trailing slash): nothing was processed
    if resp.status_code >= 500:
        return f"{resp.status_code} {resp.text[:120]!r}"
    if any(leak in resp.text for leak in _LEAKS):
        return f"{resp.status_code} leaks internals"
    try:
        answer = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        return f"{resp.status_code} answer is not JSON"
    if 400 <= resp.status_code < 500 and not (isinstance(answer, dict) and ("error" in answer or "detail" in answer)):
        return f"{resp.status_code} without an error body"
    return None


def record(tally: Tally, probe: Probe, resp: httpx.Response) -> None:
    tally.sent += 1
    tally.by_status[resp.status_code] += 1
    why = problem(probe, resp)
    if why:
        tally.fail(probe, why)
        return
    if 300 <= resp.status_code < 400:
        return
    # what the request was allowed to change, for the database comparison (and on a deployment: a FAIL)
    answer = orjson.loads(resp.content)
    ident = answer.get("appointment_id") if isinstance(answer, dict) else None
    if probe.endpoint in ("book", "cancel") and 200 <= resp.status_code < 300:
        if isinstance(ident, int):
            (tally.booked if probe.endpoint == "book" else tally.cancelled).add(ident)
        tally.writes.append(f"{resp.status_code} to {probe.describe(80)}")
    elif probe.endpoint.startswith("vapi.") and resp.status_code == 200:
        booked, cancelled = _BOOKED.findall(resp.text), _CANCELLED.findall(resp.text)
        tally.booked.update(int(m) for m in booked)
        tally.cancelled.update(int(m) for m in cancelled)
        if booked or cancelled:
            tally.writes.append(f"booked {booked} cancelled {cancelled} by {probe.describe(80)}")


class _OutOfTime(Exception):
    pass


_BATCH = 50


# Drawing costs about as much CPU as sending and answering together: one generator process beside this one keeps
# two cores busy (two generators measured slower on 2 cores: 50 s against 41 s for 16,000 requests).
GENERATORS = 1
Message = tuple[str, "list[Probe] | bool"]  # a batch of an endpoint's requests, or its end (True: out of time)


def _draw(layout: Layout, endpoints: tuple[str, ...], examples: int, rng_seed: int, budget_s: float,
          out: mp.Queue[Message]) -> None:
    """In a child process: hypothesis draws `examples` requests per endpoint and passes them on in batches, then
    (endpoint, out_of_time) ends the endpoint."""
    warnings.simplefilter("ignore", HypothesisWarning)  # "overly large repr" of the 70 kB strings
    for endpoint in endpoints:
        out.put((endpoint, _draw_endpoint(layout, endpoint, examples, rng_seed, time.monotonic() + budget_s, out)))


def _draw_endpoint(layout: Layout, endpoint: str, examples: int, rng_seed: int, ends: float,
                   out: mp.Queue[Message]) -> bool:
    batch: list[Probe] = []

    @settings(max_examples=examples, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet)
    @given(strategy(layout, endpoint))
    def draw(probe: Probe) -> None:
        if time.monotonic() > ends:
            raise _OutOfTime
        batch.append(probe)
        if len(batch) >= _BATCH:
            out.put((endpoint, batch.copy()))
            batch.clear()

    out_of_time = False
    try:
        hypothesis_seed(rng_seed)(draw)()
    except _OutOfTime:
        out_of_time = True
    out.put((endpoint, batch))
    return out_of_time


def fuzz(client: httpx.Client, layout: Layout, endpoints: tuple[str, ...], examples: int, rng_seed: int = 0,
         budget_s: float = SECONDS_PER_ENDPOINT) -> list[Tally]:
    """Sends `examples` generated requests to each endpoint (fewer where its time budget runs out), drawn by
    GENERATORS child processes while this one sends."""
    ctx = mp.get_context("spawn")  # not fork: the caller may have threads (an event loop, pytest's)
    probes: mp.Queue[Message] = ctx.Queue(maxsize=40)
    shares = [endpoints[i::GENERATORS] for i in range(GENERATORS) if endpoints[i::GENERATORS]]
    children = [ctx.Process(target=_draw, args=(layout, share, examples, rng_seed + i, budget_s, probes),
                            name=f"bookbench-hostile-draw-{i}", daemon=True) for i, share in enumerate(shares)]
    for child in children:
        child.start()
    tallies = {e: Tally(e) for e in endpoints}
    pending = set(endpoints)
    try:
        while pending:
            try:
                endpoint, item = probes.get(timeout=1.0)
            except queue.Empty:
                if not any(child.is_alive() for child in children):
                    codes = ", ".join(str(child.exitcode) for child in children)
                    raise RuntimeError(f"the hostile request generators exited (codes {codes}) before "
                                       f"{', '.join(sorted(pending))} ended") from None
                continue
            if isinstance(item, bool):
                tallies[endpoint].out_of_time = item
                pending.discard(endpoint)
                continue
            for probe in item:
                _send_one(client, tallies[endpoint], probe, layout)
    finally:
        for child in children:
            if child.is_alive():
                child.kill()
            child.join(5)
    return [tallies[e] for e in endpoints]


def withheld(probe: Probe, layout: Layout) -> str | None:
    """Why this request must not go to a deployment (it could name a row not proven absent), or None. The last
    line of defence: the strategies already avoid such ids, and this does not trust them to."""
    if layout.real_ids:
        return None
    ids = unsafe_ids(probe.method, probe.path, probe.body, layout.absent)
    return f"could name rows {sorted(ids)[:3]}" if ids else None


def _send_one(client: httpx.Client, tally: Tally, probe: Probe, layout: Layout) -> None:
    if withheld(probe, layout):
        tally.withheld += 1
        return
    try:
        resp = send(client, probe)
    except (httpx.InvalidURL, httpx.LocalProtocolError):
        tally.skipped += 1  # the client refused to send it: nothing the service saw
        return
    except httpx.TransportError as exc:
        # a dropped connection is a failure of the service too (it is how a crashed worker looks)
        tally.sent += 1
        tally.fail(probe, f"no answer ({type(exc).__name__})")
        return
    record(tally, probe, resp)


def replay_corpus(client: httpx.Client, layout: Layout) -> Tally:
    tally = Tally("corpus")
    for _name, probe in corpus(layout):
        if withheld(probe, layout):
            tally.withheld += 1
            continue
        record(tally, probe, send(client, probe))
    return tally


# --- the database must change only by what the accepted requests did --------------------------------------------

_ROWS = "SELECT id, md5(a::text) AS digest, status FROM appointments a"
_REST = """
SELECT (SELECT count(*) FROM notification_outbox) AS outbox,
       (SELECT md5(string_agg(x, '|' ORDER BY x)) FROM (
            SELECT o::text AS x FROM organizations o UNION ALL SELECT p::text FROM providers p
            UNION ALL SELECT c::text FROM contacts c) t) AS tenants
"""


@dataclass(frozen=True)
class Snapshot:
    """Every appointment's digest and status, the outbox size and a digest of the tenants' tables: meant for the
    small scratch databases the checks and tests seed (a few thousand rows)."""

    rows: dict[int, tuple[str, str]]
    outbox: int
    tenants: str


def snapshot(dsn: str) -> Snapshot:
    async def take(conn: asyncpg.Connection) -> Snapshot:
        rows = {r["id"]: (r["digest"], r["status"]) for r in await conn.fetch(_ROWS)}
        rest = await conn.fetchrow(_REST)
        assert rest is not None
        return Snapshot(rows, rest["outbox"], rest["tenants"] or "")

    return run_with(dsn, take)


def unexpected_changes(before: Snapshot, after: Snapshot, booked: set[int], cancelled: set[int]) -> list[str]:
    """Empty when `after` differs from `before` by exactly the accepted bookings and cancellations (each of which
    queues 2 notifications); otherwise what else changed."""
    problems = []
    new = set(after.rows) - set(before.rows)
    if new != booked:
        problems.append(f"{len(new)} new appointments, {len(booked)} bookings accepted")
    if set(before.rows) - set(after.rows):
        problems.append(f"{len(set(before.rows) - set(after.rows))} appointments deleted")
    touched = [i for i, (digest, _) in before.rows.items()
               if i in after.rows and after.rows[i][0] != digest and i not in cancelled]
    if touched:
        problems.append(f"{len(touched)} appointments changed without an accepted request (ids {touched[:5]})")
    wrongly = [i for i in cancelled if i in after.rows and after.rows[i][1] != "cancelled"]
    if wrongly:
        problems.append(f"{len(wrongly)} accepted cancellations not recorded")
    expected_outbox = before.outbox + 2 * (len(booked) + len(cancelled))
    if after.outbox != expected_outbox:
        problems.append(f"outbox grew by {after.outbox - before.outbox}, expected "
                        f"{expected_outbox - before.outbox}")
    if after.tenants != before.tenants:
        problems.append("organizations, providers or contacts changed")
    return problems


# --- the check suite ----------------------------------------------------------------------------------------------

def _run(target: CheckTarget, examples: int) -> list[CheckResult]:
    results: list[CheckResult] = []
    before = snapshot(target.dsn) if target.scratch and target.dsn else None
    booked: set[int] = set()
    cancelled: set[int] = set()
    writes: list[str] = []
    # a 3xx is an answer to record, never followed: its destination was not judged by the loopback rule
    with net.client(base_url=target.base_url, timeout=10.0) as client:
        layout = Layout(target.params, real_ids=target.scratch)
        # ids proven absent, before anything is sent: on a deployment the only valid ids a write may name; on a
        # scratch database the HTTP-level booking's ids (so that it cannot book even where keys are not refused)
        absent = hostile_deployment.prove_absent(client, layout, target.rng, target.dsn)
        layout = dataclasses.replace(layout, absent=absent)
        watch = None if target.scratch else hostile_deployment.Watch(target.dsn)
        if watch is not None:
            watch.start(client, layout)
        started = time.perf_counter()
        tally = replay_corpus(client, layout)
        writes += tally.writes
        results.append(_result(f"regression corpus ({tally.sent} known inputs)", tally,
                               time.perf_counter() - started))
        started = time.perf_counter()
        tallies = fuzz(client, layout, ENDPOINTS, examples, rng_seed=target.rng.randrange(2**32))
        share = (time.perf_counter() - started) / len(tallies)
        for tally in tallies:
            booked |= tally.booked
            cancelled |= tally.cancelled
            writes += tally.writes
            results.append(_result(tally.endpoint, tally, share))
        results.extend(hostile_http.run(target.base_url, layout))
        if watch is not None:
            results.extend(watch.verdicts(client, layout, writes))
    if before is not None and target.dsn:
        changed = unexpected_changes(before, snapshot(target.dsn), booked, cancelled)
        results.append(CheckResult("hostile", "database changed only by accepted requests", not changed,
                                   "; ".join(changed) or f"{len(booked)} bookings and {len(cancelled)} "
                                                         "cancellations accepted; nothing else changed"))
    if target.service_log is not None:
        results.append(log_result(target.service_log))
    return results


def _result(name: str, tally: Tally, seconds: float) -> CheckResult:
    detail = f"{tally.sent} requests, {tally.failed} failed ({tally.statuses()})"
    if tally.out_of_time:
        detail += f"; stopped at the {SECONDS_PER_ENDPOINT:.0f} s budget"
    if tally.withheld:
        detail += f"; {tally.withheld} withheld (could name a row on the deployment)"
    if tally.examples:
        detail += "; first: " + " | ".join(tally.examples)
    return CheckResult("hostile", name, tally.failed == 0, detail, seconds)


def log_result(log: Path) -> CheckResult:
    text = log.read_text(errors="replace") if log.exists() else ""
    tracebacks = text.count("Traceback (most recent call last)")
    return CheckResult("hostile", "service log holds no traceback", tracebacks == 0,
                       f"{tracebacks} traceback(s) in {log.name} ({len(text.splitlines())} lines)")


async def run(target: CheckTarget, examples: int) -> list[CheckResult]:
    # hypothesis drives a synchronous loop; a thread keeps the event loop of the other suites free
    return await asyncio.to_thread(_run, target, examples)
