"""The latency budget of one scenario (issue 27): where a median and a P95 request's time goes — pool wait, lock
wait, database execution, the rest (service + network + client) — from summary.json and the run's database
evidence (db/statements.json, db/waits.json), with the method in words; and the statement rows the report shows.

Two methods, by what the run measured. With the reference service's own timing, its percentile bands give pool
wait and connection-held time per request; without it (a foreign API), pg_stat_statements gives the database's
execution time per request as a mean. Either way the lock wait is the connection-held (or execution) time times the
sampled share of the service's busy backends waiting on a lock: the scenario's share, not the band's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bookbench.artifacts.db_evidence import ScenarioStatements, ScenarioWaits, ServiceTiming, WaitShares
from bookbench.artifacts.summary import ScenarioSummary

PARTS = ("pool wait", "lock wait", "database execution", "the rest")
LOCK_CATEGORIES = ("Lock:advisory", "Lock:other")
# row name, and the key of both the service's band and the client's percentile (summary latency_ms)
ROWS = (("median", "p50"), ("P95", "p95"))
TOP_STATEMENTS = 6
MEASURING = "bookbench:"  # the label prefix of bookbench's own statements during the load (db/statements.py)
QUERY_SHOWN = 90  # characters of a foreign statement's text shown beside its "other" label


def not_measured(reason: str | None, fallback: str) -> str:
    """A reason as the pages print it: always starting "not measured: " (the artifacts' own reasons usually do)."""
    text = (reason or fallback).strip()
    return text if text.startswith("not measured") else f"not measured: {text}"


@dataclass(frozen=True)
class BudgetRow:
    """One request's time in parts, in ms. None: that part was not measured (the budget says why)."""
    name: str  # "median" or "P95"
    client_ms: float  # the client's P50 / P95 latency
    pool_wait_ms: float | None
    lock_wait_ms: float | None
    db_exec_ms: float  # with lock_wait_ms None it includes any lock wait
    rest_ms: float  # never negative: clamped at 0 (see over_ms)
    over_ms: float  # by how much the measured parts exceed the client figure (0 when they fit)

    def parts(self) -> dict[str, float | None]:
        return dict(zip(PARTS, (self.pool_wait_ms, self.lock_wait_ms, self.db_exec_ms, self.rest_ms), strict=True))

    @property
    def total_ms(self) -> float:
        """The sum of the measured parts: the client figure, unless the rest was clamped."""
        return sum(v for v in self.parts().values() if v is not None)


@dataclass(frozen=True)
class LatencyBudget:
    source: Literal["service timing", "statements"]
    rows: tuple[BudgetRow, ...]  # median, P95
    method: str  # the method in words, as the page states it
    unmeasured: dict[str, str]  # part -> "not measured: ..." for every part without a figure
    notes: tuple[str, ...]  # clamps, a service ring that no longer held the window's start, ...


@dataclass(frozen=True)
class NoBudget:
    reason: str  # "not measured: ..."


@dataclass(frozen=True)
class LockShare:
    share: float  # Lock:advisory + Lock:other among the busy observations
    advisory: float
    other: float
    waits: WaitShares


def lock_share(waits: ScenarioWaits | None) -> LockShare | str:
    """The sampled share of busy backend observations waiting on a lock, or why there is none."""
    if waits is None:
        return "not measured: db/waits.json has no entry for this scenario"
    shares = waits.waits
    if shares is None:
        return not_measured(waits.waits_not_measured, "wait events were not sampled")
    if shares.observations == 0:
        return f"not measured: no sampled instant found a busy backend ({shares.instants:,} instants)"
    advisory, other = (shares.shares.get(c, 0.0) for c in LOCK_CATEGORIES)
    return LockShare(advisory + other, advisory, other, shares)


def _client(summary: ScenarioSummary, key: str) -> float:
    value = getattr(summary.latency_ms, key)
    assert isinstance(value, float | int), key  # latency_budget returned NoBudget before when it is None
    return float(value)


def _row(name: str, client: float, pool: float | None, held: float, lock: LockShare | str) -> BudgetRow:
    lock_ms = held * lock.share if isinstance(lock, LockShare) else None
    rest = client - (pool or 0.0) - held
    return BudgetRow(name, client, pool, lock_ms, held - (lock_ms or 0.0), max(rest, 0.0), max(-rest, 0.0))


def _lock_words(lock: LockShare | str) -> str:
    if isinstance(lock, str):
        return f"lock wait is not separated ({lock}): database execution includes it"
    w = lock.waits
    return (f"split into lock wait and database execution by the share of the service's busy backends found waiting "
            f"on a lock ({100 * lock.share:.1f} %: Lock:advisory {100 * lock.advisory:.1f} %, other locks "
            f"{100 * lock.other:.1f} %; {w.observations:,} busy observations at {w.hz:.0f} Hz) — an approximation: "
            f"the share is the whole scenario's, not the request's")


def _clamp_notes(rows: tuple[BudgetRow, ...], what: str) -> tuple[str, ...]:
    return tuple(
        f"{r.name}: {what} ({r.total_ms:,.1f} ms) exceeds the client's {r.name} ({r.client_ms:,.1f} ms) by "
        f"{r.over_ms:,.1f} ms: the rest is shown as 0 and the parts add up to {what}, not the client's figure"
        for r in rows if r.over_ms > 0)


def _from_service(summary: ScenarioSummary, service: ServiceTiming, lock: LockShare | str) -> LatencyBudget:
    rows = tuple(_row(name, _client(summary, key), service.bands[key].pool_wait_ms, service.bands[key].db_ms, lock)
                 for name, key in ROWS)
    method = (f"From the service's own timing ({service.requests:,} requests in the window): the median row is the "
              f"requests whose handler time lies in its 45th-55th percentile band "
              f"(n={service.bands['p50'].requests:,}), the P95 row the 94th-96th "
              f"(n={service.bands['p95'].requests:,}), as means. Pool wait is their wait for a pooled connection; the "
              f"time they held a connection (the database's execution and commit, lock waits, round trips) is "
              f"{_lock_words(lock)}. The rest (service, network, client) is the client's P50 / P95 latency "
              f"(n={summary.requests:,}) minus pool wait and connection-held time.")
    notes = _clamp_notes(rows, "the service's band")
    if not service.complete:
        notes += ("the service's ring of recent requests no longer held the window's start: its timing covers the "
                  "end of the window only",)
    unmeasured = {"lock wait": lock} if isinstance(lock, str) else {}
    return LatencyBudget("service timing", rows, method, unmeasured, notes)


def _from_statements(summary: ScenarioSummary, statements: ScenarioStatements, service_reason: str,
                     lock: LockShare | str) -> LatencyBudget:
    # nested statements (the conflict check inside the booking function) are inside their caller's time already;
    # bookbench's own measuring (snapshots, the wait sampler) is no request's time
    top = [s for s in statements.statements if s.toplevel is not False and not s.label.startswith(MEASURING)]
    total = sum(s.total_exec_ms for s in top)
    per_request = total / summary.requests
    rows = tuple(_row(name, _client(summary, key), None, per_request, lock) for name, key in ROWS)
    method = (f"The target reported no per-request timing ({service_reason}), so database execution per request is "
              f"the window's total execution time of its top-level statements ({total:,.1f} ms over "
              f"{len(top):,} statements, pg_stat_statements; bookbench's own measuring left out) divided by the "
              f"scenario's {summary.requests:,} requests: a mean, the same in both rows; it is {_lock_words(lock)}. "
              f"Pool wait is not measured. The rest (service, network, client) is the client's P50 / P95 latency "
              f"minus the database's time.")
    notes = _clamp_notes(rows, "the database's mean per request")
    if not top:
        notes += ("no statement ran in the measured window: the target may not use this database",)
    if any(s.toplevel is None for s in top):
        notes += ("this server's pg_stat_statements does not say which statements ran inside a function: their "
                  "time may be counted twice",)
    unmeasured = {"pool wait": not_measured(None, "the target is not the reference service (no pool timing)")}
    if isinstance(lock, str):
        unmeasured["lock wait"] = lock
    return LatencyBudget("statements", rows, method, unmeasured, notes)


def latency_budget(summary: ScenarioSummary, statements: ScenarioStatements | None,
                   waits: ScenarioWaits | None) -> LatencyBudget | NoBudget:
    """The scenario's budget by the best method its evidence allows, or why there is none."""
    if summary.requests == 0 or summary.latency_ms.p50 is None or summary.latency_ms.p95 is None:
        return NoBudget("not measured: the scenario has no request after its warm-up")
    lock = lock_share(waits)
    service = waits.service if waits else None
    if service is not None and service.requests > 0 and {"p50", "p95"} <= set(service.bands):
        return _from_service(summary, service, lock)
    if waits is None:
        service_reason = "not measured: db/waits.json has no entry for this scenario"
    elif service is None:
        service_reason = not_measured(waits.service_not_measured, "the service's timing was not read")
    else:
        service_reason = "not measured: the service timed no request in the window"
    if statements is not None and statements.not_measured is None:
        return _from_statements(summary, statements, service_reason, lock)
    statements_reason = ("not measured: db/statements.json has no entry for this scenario" if statements is None
                         else not_measured(statements.not_measured, "pg_stat_statements was not read"))
    return NoBudget(f"{service_reason}; {statements_reason}")


@dataclass(frozen=True)
class StatementRow:
    """One statement as the report's table shows it: cost per call, and where its plans are."""
    label: str
    query: str  # the normalized text, cut for the page (shown for statements that are not the service's own)
    own: bool
    nested: bool  # ran inside a function: its time is inside its caller's too
    calls: int
    total_exec_ms: float
    mean_exec_ms: float
    hit_per_call: float | None  # None: no call
    read_per_call: float | None
    hit_ratio: float | None  # None: no shared block touched


def top_statements(statements: ScenarioStatements, n: int = TOP_STATEMENTS) -> list[StatementRow]:
    """The `n` statements with the largest total execution time in the window."""
    rows = []
    for s in sorted(statements.statements, key=lambda s: s.total_exec_ms, reverse=True)[:n]:
        touched = s.shared_blks_hit + s.shared_blks_read
        query = s.query if len(s.query) <= QUERY_SHOWN else s.query[:QUERY_SHOWN - 1] + "…"
        rows.append(StatementRow(
            s.label, query, s.own, s.toplevel is False, s.calls, s.total_exec_ms, s.mean_exec_ms,
            s.shared_blks_hit / s.calls if s.calls else None, s.shared_blks_read / s.calls if s.calls else None,
            s.shared_blks_hit / touched if touched else None))
    return rows
