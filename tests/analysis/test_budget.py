"""The latency budget from known inputs: both methods (the service's timing; pg_stat_statements for a foreign API),
the clamp when the service's figure exceeds the client's, parts not measured, and no budget at all; the invariants
(nothing negative; the parts add up to the client's latency, or to it plus the clamped excess)."""

from __future__ import annotations

import random

import pytest

from bookbench.analysis.budget import (
    PARTS,
    LatencyBudget,
    NoBudget,
    latency_budget,
    lock_share,
    top_statements,
)
from bookbench.artifacts.db_evidence import (
    WAIT_CATEGORIES,
    ScenarioStatements,
    ScenarioWaits,
    ServiceTiming,
    StatementDelta,
    TimingBand,
    WaitShares,
)
from bookbench.artifacts.summary import ScenarioSummary


def summary(p50: float | None, p95: float | None, requests: int = 100) -> ScenarioSummary:
    latency = {"mean": p50, "p50": p50, "p95": p95, "p99": p95, "p999": p95, "max": p95}
    return ScenarioSummary.model_validate({
        "requests": requests, "failures": 0, "error_rate": 0.0, "availability": 1.0, "throughput_rps": 10.0,
        "latency_ms": latency, "samples_total": requests, "warmup_excluded": 0, "window_s": 10.0, "endpoints": {},
        "timeseries": [], "distribution": {"cdf": [], "hist": {"edges": [], "counts": []}}, "noise": [],
        "batches": None})


def shares(**by_category: int) -> WaitShares:
    counts = {c: by_category.get(c.replace(":", "_").replace(" ", "_"), 0) for c in WAIT_CATEGORIES}
    total = sum(counts.values())
    return WaitShares(hz=15.0, instants=300, observations=total, busy_backends_mean=total / 300, counts=counts,
                      shares={c: (n / total if total else 0.0) for c, n in counts.items()})


def service(p50: tuple[float, float], p95: tuple[float, float], complete: bool = True) -> ServiceTiming:
    """Bands as (pool wait ms, connection-held ms)."""
    return ServiceTiming(requests=1000, handler_ms_mean=80.0, pool_wait_ms_mean=10.0, db_ms_mean=50.0,
                         complete=complete,
                         bands={"p50": TimingBand(requests=100, handler_ms=45.0, pool_wait_ms=p50[0], db_ms=p50[1]),
                                "p95": TimingBand(requests=20, handler_ms=250.0, pool_wait_ms=p95[0], db_ms=p95[1])})


# 30 % of the busy observations wait on a lock: 25 % advisory, 5 % other
LOCKED = shares(CPU=120, Lock_advisory=50, Lock_other=10, IO_DataFileRead=20)


def waits(timing: ServiceTiming | None, sampled: WaitShares | None = LOCKED) -> ScenarioWaits:
    return ScenarioWaits(window=None, waits=sampled,
                         waits_not_measured=None if sampled else "not measured: sampler off", service=timing,
                         service_not_measured=None if timing else "not measured: no /stats/timing")


def statement(label: str, total_ms: float, calls: int = 100, toplevel: bool | None = True, hit: int = 900,
              read: int = 100, query: str = "SELECT 1") -> StatementDelta:
    return StatementDelta(queryid="1", label=label, own=label != "other", toplevel=toplevel, query=query, calls=calls,
                          total_exec_ms=total_ms, mean_exec_ms=total_ms / calls if calls else 0.0, rows=calls,
                          shared_blks_hit=hit, shared_blks_read=read, shared_blks_dirtied=0, temp_blks_read=0,
                          temp_blks_written=0, wal_bytes=None, plans=None, total_plan_ms=None)


STATEMENTS = ScenarioStatements(window=None, statements=[
    statement("booking function", 3000.0),
    statement("conflict check", 2500.0, toplevel=False),  # inside the booking function: not counted again
    statement("availability", 1000.0, calls=300, hit=0, read=0),
    statement("bookbench: wait sampler", 700.0, calls=1500)])  # the measuring: no request's time


def test_with_the_service_timing_the_bands_split_by_the_lock_share() -> None:
    b = latency_budget(summary(100.0, 400.0), STATEMENTS, waits(service((5.0, 40.0), (50.0, 200.0))))
    assert isinstance(b, LatencyBudget) and b.source == "service timing"
    median, p95 = b.rows
    assert median.parts() == pytest.approx({"pool wait": 5.0, "lock wait": 12.0, "database execution": 28.0,
                                            "the rest": 55.0})
    assert p95.parts() == pytest.approx({"pool wait": 50.0, "lock wait": 60.0, "database execution": 140.0,
                                         "the rest": 150.0})
    assert median.total_ms == pytest.approx(100.0) and p95.total_ms == pytest.approx(400.0)
    assert b.unmeasured == {} and b.notes == ()
    assert "(30.0 %: Lock:advisory 25.0 %, other locks 5.0 %; 200 busy observations at 15 Hz)" in b.method
    assert "an approximation: the share is the whole scenario's" in b.method


def test_a_service_band_longer_than_the_client_figure_is_clamped_and_said() -> None:
    b = latency_budget(summary(30.0, 400.0), None, waits(service((5.0, 40.0), (50.0, 200.0), complete=False)))
    assert isinstance(b, LatencyBudget)
    median = b.rows[0]
    assert median.rest_ms == 0.0 and median.over_ms == pytest.approx(15.0)
    assert median.total_ms == pytest.approx(45.0)  # the service's figure, not the client's
    assert b.notes[0] == ("median: the service's band (45.0 ms) exceeds the client's median (30.0 ms) by 15.0 ms: the "
                          "rest is shown as 0 and the parts add up to the service's band, not the client's figure")
    assert "no longer held the window's start" in b.notes[1]


def test_without_sampled_waits_the_lock_wait_is_not_measured_not_zero() -> None:
    b = latency_budget(summary(100.0, 400.0), None, waits(service((5.0, 40.0), (50.0, 200.0)), sampled=None))
    assert isinstance(b, LatencyBudget)
    assert b.rows[0].lock_wait_ms is None and b.rows[0].db_exec_ms == 40.0 and b.rows[0].rest_ms == 55.0
    assert b.unmeasured == {"lock wait": "not measured: sampler off"}
    assert "lock wait is not separated (not measured: sampler off)" in b.method
    idle = lock_share(waits(None, sampled=shares()))  # sampled, but no backend was ever busy
    assert idle == "not measured: no sampled instant found a busy backend (300 instants)"


def test_a_foreign_api_gets_the_statements_mean_and_no_pool_wait() -> None:
    b = latency_budget(summary(100.0, 400.0, requests=100), STATEMENTS, waits(None))
    assert isinstance(b, LatencyBudget) and b.source == "statements"
    # (3000 + 1000) ms of top-level execution over 100 requests: 40 ms each, 30 % of it lock wait
    for row, client in zip(b.rows, (100.0, 400.0), strict=True):
        assert row.pool_wait_ms is None
        assert (row.lock_wait_ms, row.db_exec_ms) == pytest.approx((12.0, 28.0))
        assert row.rest_ms == pytest.approx(client - 40.0) and row.total_ms == pytest.approx(client)
    assert b.unmeasured["pool wait"].startswith("not measured: ")
    assert "no per-request timing (not measured: no /stats/timing)" in b.method
    assert "4,000.0 ms over 2 statements, pg_stat_statements; bookbench's own measuring left out" in b.method
    assert "a mean, the same in both rows" in b.method


def test_the_statements_mean_above_the_median_is_clamped() -> None:
    b = latency_budget(summary(25.0, 400.0, requests=100), STATEMENTS, waits(None))
    assert isinstance(b, LatencyBudget)
    assert b.rows[0].rest_ms == 0.0 and b.rows[0].over_ms == pytest.approx(15.0)
    assert b.notes[0].startswith("median: the database's mean per request (40.0 ms) exceeds the client's median")


def test_nothing_measured_gives_no_budget_with_both_reasons() -> None:
    off = ScenarioStatements(window=None, statements=[], not_measured="not measured: pg_stat_statements is absent")
    b = latency_budget(summary(100.0, 400.0), off, waits(None))
    assert b == NoBudget("not measured: no /stats/timing; not measured: pg_stat_statements is absent")
    assert latency_budget(summary(100.0, 400.0), None, None) == NoBudget(
        "not measured: db/waits.json has no entry for this scenario; "
        "not measured: db/statements.json has no entry for this scenario")
    empty = latency_budget(summary(None, None, requests=0), STATEMENTS, waits(service((5.0, 40.0), (50.0, 200.0))))
    assert empty == NoBudget("not measured: the scenario has no request after its warm-up")


@pytest.mark.parametrize("seed", range(40))
def test_invariants_nothing_negative_and_the_parts_add_up(seed: int) -> None:
    rnd = random.Random(seed)
    p50 = rnd.uniform(1, 500)
    sc = summary(p50, p50 * rnd.uniform(1, 30), requests=rnd.randint(1, 10_000))
    sampled = shares(CPU=rnd.randint(0, 50), Lock_advisory=rnd.randint(0, 50), Lock_other=rnd.randint(0, 5),
                     Client_ClientRead=rnd.randint(1, 20))
    timing = service((rnd.uniform(0, 50), rnd.uniform(0, 300)), (rnd.uniform(0, 500), rnd.uniform(0, 3000)))
    stm = ScenarioStatements(window=None, statements=[statement("booking function", rnd.uniform(0, 1e6))])
    for b in (latency_budget(sc, stm, waits(timing, sampled)), latency_budget(sc, stm, waits(None, sampled))):
        assert isinstance(b, LatencyBudget)
        for row in b.rows:
            assert all(v is None or v >= 0 for v in row.parts().values()), row
            assert row.total_ms == pytest.approx(row.client_ms + row.over_ms)
            assert (row.over_ms > 0) == (row.rest_ms == 0 and row.total_ms > row.client_ms)
            assert set(b.unmeasured) == {p for p, v in row.parts().items() if v is None} <= set(PARTS)


def test_top_statements_by_total_time_with_costs_per_call() -> None:
    many = ScenarioStatements(window=None, statements=[
        *STATEMENTS.statements,
        *(statement("other", float(i), query="SELECT " + "x, " * 60) for i in range(1, 6)),
        statement("cancel", 0.0, calls=0, hit=0, read=0)])
    rows = top_statements(many)
    # bookbench's own measuring is shown with its cost, not hidden (it is left out of the budget only)
    assert [r.label for r in rows] == ["booking function", "conflict check", "availability",
                                       "bookbench: wait sampler", "other", "other"]
    booking, check, availability = rows[:3]
    assert (booking.calls, booking.mean_exec_ms, booking.hit_per_call, booking.read_per_call) == (100, 30.0, 9.0, 1.0)
    assert booking.hit_ratio == pytest.approx(0.9) and not booking.nested and check.nested
    assert availability.hit_ratio is None  # no block touched: no ratio, not 0 %
    assert len(rows[4].query) == 90 and rows[4].query.endswith("…")
    assert top_statements(many, n=20)[-1].read_per_call is None  # no call: nothing per call
