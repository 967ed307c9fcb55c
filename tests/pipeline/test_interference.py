"""The interference sampler (what else the machine did during a scenario) and the generator-saturation rule."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
import pytest
from rich.console import Console

from bookbench.analysis import machine
from bookbench.analysis.summarize import LATENESS_P95_BOUND_MS, analyse_run, analyse_scenario, generator_figures
from bookbench.artifacts import manifest as manifest_file
from bookbench.artifacts.manifest import Manifest, ScenarioEntry
from bookbench.artifacts.summary import Summary
from bookbench.cli.terminal import generator_lines
from bookbench.pipeline import interference as itf
from bookbench.pipeline.narration import narrate_to
from bookbench.pipeline.run import RunOptions, execute

TINY = Path(__file__).resolve().parents[1] / "data" / "scenarios_tiny.yaml"
BUSY = [sys.executable, "-c", "while True: pass"]
LOOP_S = 3.0


# -- the process tree ----------------------------------------------------------------------------------------
def test_backend_titles_name_their_database() -> None:
    assert itf.backend_database("postgres: postgres bookbench 127.0.0.1(40512) idle") == "bookbench"
    assert itf.backend_database("postgres: postgres t_ab12 127.0.0.1(1) SELECT") == "t_ab12"
    assert itf.backend_database("postgres: autovacuum worker other") == "other"
    assert itf.backend_database("postgres: checkpointer ") is None
    assert itf.backend_database("postgres: walwriter") is None


def test_own_tree_holds_descendants_and_the_server_but_not_other_databases_backends() -> None:
    # 1 init; 100 bookbench -> 101 service -> 102 worker; 100 -> 103 locust; 200 postmaster -> 201 ours,
    # 202 another database's backend, 203 checkpointer; 300 someone else's loop
    ppids = {1: 0, 100: 1, 101: 100, 102: 101, 103: 100, 200: 1, 201: 200, 202: 200, 203: 200, 300: 1}
    mine = itf.own_tree(ppids, [100], 200, foreign=lambda pid: pid == 202)
    assert mine == {100, 101, 102, 103, 200, 201, 203}
    assert itf.own_tree(ppids, [100, 999]) == {100, 101, 102, 103}  # a root that is gone is no error


def test_accounts_credit_processes_born_and_reaped_between_samples() -> None:
    acc = itf.Accounts()
    assert acc.step(10.0, {(100, 1.0): 5.0, (101, 2.0): 3.0}, {(100, 1.0): 1, (101, 2.0): 100}) is None
    # 100 used 1 s; 101 used 0.5 s; 102 was born at 10.5 and used 0.25 s
    used = acc.step(11.0, {(100, 1.0): 6.0, (101, 2.0): 3.5, (102, 10.5): 0.25},
                    {(100, 1.0): 1, (101, 2.0): 100, (102, 10.5): 100})
    assert used == pytest.approx(1.75)
    # 101 exited and was reaped by 100: 100's children times now hold 101's final 3.7 s (0.2 s of it new)
    used = acc.step(12.0, {(100, 1.0): 6.0 + 3.7, (102, 10.5): 0.25}, {(100, 1.0): 1, (102, 10.5): 100})
    assert used == pytest.approx(0.2)


def test_differs_strongly_needs_both_the_factor_and_the_absolute_margin() -> None:
    assert machine.differs_strongly([0.1, 0.1, 0.12, 1.4]) == [False, False, False, True]
    # three times the median, but a few hundredths of a core: a quiet machine's wander
    assert machine.differs_strongly([0.01, 0.01, 0.03]) == [False, False, False]
    assert machine.differs_strongly([0.5]) == [False]
    assert machine.differs_strongly([]) == []


def test_interference_summary_weights_scenarios_by_samples() -> None:
    def entry(cores: float, n: int) -> ScenarioEntry:
        ticks = [itf.Tick(t=float(i), wall=1.0, outside_cores=cores, own_cores=0.5, steal_cores=0.0, load1=2.0,
                          available_mb=1000.0, mem_pressure=None, cpu_pressure=1.0, generator={}) for i in range(n)]
        return ScenarioEntry(definition={}, planned_s=n, interference=itf.summarize(ticks, cpus=2))

    man = Manifest.model_construct(scenarios={"a": entry(1.0, 3), "b": entry(0.0, 1), "c": ScenarioEntry(
        definition={}, planned_s=1)})
    out = machine.interference_summary(man)
    assert out.measured and out.samples == 4
    assert out.outside_cores == pytest.approx(0.75)
    assert out.outside_cpu_share == pytest.approx(0.375)
    assert out.outside_cpu_s == pytest.approx(3.0)
    assert machine.interference_summary(Manifest.model_construct(scenarios={})).measured is False


def test_pressure_reads_psi_and_tolerates_its_absence(tmp_path: Path) -> None:
    (tmp_path / "memory").write_text("some avg10=12.50 avg60=3.00 avg300=1.00 total=5\nfull avg10=0.00\n")
    assert itf.pressure("memory", tmp_path) == 12.5
    assert itf.pressure("cpu", tmp_path) is None


# -- the sampler on real processes (bounded: each loop is killed after LOOP_S seconds) ----------------------
@pytest.fixture
def outsider() -> Iterator[int]:
    """A busy loop outside this process's tree: started by a shell that exits at once (so it is re-parented away
    from us), in a session of its own."""
    shell = subprocess.Popen(["sh", "-c", " ".join(f"'{a}'" for a in BUSY) + " >/dev/null 2>&1 & echo $!"],
                             stdout=subprocess.PIPE, start_new_session=True)
    pid = int(shell.communicate(timeout=5)[0])
    try:
        yield pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _reaped(pid)


def _reaped(pid: int) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and psutil.pid_exists(pid):
        time.sleep(0.05)


def _cpu(pid: int) -> float:
    c = psutil.Process(pid).cpu_times()
    return float(c.user + c.system)


def _sample(busy: int, every_s: float = 0.5) -> tuple[dict[str, Any], float]:
    """Sample for LOOP_S seconds; the sampler's figures and the CPU seconds the loop used meanwhile."""
    before = _cpu(busy)
    sampler = itf.Sampler([os.getpid()], every_s=every_s, generator=lambda: {"loop": busy}).start()
    time.sleep(LOOP_S)
    sampler.tick()
    sampler.stop()
    used = _cpu(busy) - before
    out = sampler.interference()
    assert out is not None and out["samples"] >= 2
    return out, used


def test_a_busy_loop_outside_the_tree_is_counted_as_an_outsider(outsider: int) -> None:
    out, used = _sample(outsider)
    assert used > 0.2  # it ran (however busy the machine is otherwise)
    # the subtraction credits outsiders with at least the loop's CPU (plus whatever else ran); the run's own tree
    # (this test process: sleeping) used far less than the loop
    assert out["outside_cpu_s"] >= 0.8 * used
    assert out["own_cpu_s"] < 0.5 * used


def test_a_busy_loop_among_the_runs_own_children_is_not_an_outsider() -> None:
    child = subprocess.Popen(BUSY, start_new_session=True)  # own session, but still our child: ours
    try:
        sampler = itf.Sampler([os.getpid()], every_s=0.5, generator=lambda: {"locust": child.pid}).start()
        before = _cpu(child.pid)
        time.sleep(LOOP_S)
        sampler.tick()
        used = _cpu(child.pid) - before
        sampler.stop()
    finally:
        child.kill()
        child.wait(5)
    out = sampler.interference()
    assert out is not None
    assert used > 0.2
    assert float(out["own_cpu_s"]) >= 0.8 * used
    gen = sampler.generator_cpu()
    assert gen is not None and len(gen["processes"]["locust"]) >= 2
    assert max(s for _, s in gen["processes"]["locust"]) > 0.0


# -- the generator-saturation rule on synthetic figures --------------------------------------------------------
def _samples(n: int, late_ms: Callable[[int], float] | None, t0: float = 1000.0) -> pd.DataFrame:
    ts = t0 + np.arange(n) * 0.05
    intended = ts - np.array([late_ms(i) for i in range(n)]) / 1000.0 if late_ms else np.full(n, np.nan)
    lat = np.full(n, 10.0)
    return pd.DataFrame({"ts": ts, "latency_ms": lat, "name": "x", "ok": 1, "status": 200, "intended": intended,
                         "end": ts + lat / 1000.0})


def _cpu_series(shares: list[float], t0: float = 1000.0) -> dict[str, Any]:
    return {"interval_s": 1.0, "processes": {"worker 1": [[t0 + 1 + i, s] for i, s in enumerate(shares)],
                                             "master": [[t0 + 1 + i, 0.05] for i in range(len(shares))]}}


def _summary(df: pd.DataFrame, figures: dict[str, Any]) -> Summary:
    """A run summary of one scenario "steady" with these generator figures (what the terminal lines read)."""
    steady = analyse_scenario(df.iloc[:0], 1.0, None).model_copy(update=figures)  # its figures: not read here
    return Summary(run_id="t", method="m", scenarios={"steady": steady})


def test_a_generator_pegged_for_most_of_the_steady_window_is_saturated() -> None:
    df = _samples(200, None)  # 10 s, closed model
    out = generator_figures(_cpu_series([0.5, 0.97, 0.99, 0.95, 0.98, 0.96, 0.4, 0.99, 0.97, 0.98]), df, 1.0)
    assert out["generator_saturated"] is True
    assert "Locust worker 1" in out["generator_saturated_reason"]
    assert out["generator"]["lateness_ms"] is None
    assert out["generator"]["cpu"]["master"]["busy_fraction"] == 0.0
    lines = generator_lines(_summary(df, out))
    assert len(lines) == 1 and "the load generator was the bottleneck" in lines[0]


def test_a_generator_busy_only_briefly_is_not_saturated() -> None:
    df = _samples(200, None)
    out = generator_figures(_cpu_series([0.99, 0.99, 0.3, 0.4, 0.5, 0.3, 0.2, 0.99, 0.3, 0.4]), df, 1.0)
    assert out["generator_saturated"] is False and out["generator_saturated_reason"] is None
    assert generator_lines(_summary(df, out)) == []


def test_late_open_model_sends_beyond_the_bound_are_saturation() -> None:
    late = generator_figures(None, _samples(200, lambda i: 5.0 if i % 4 else 120.0), 0.0)
    assert late["generator"]["lateness_ms"]["p95"] > LATENESS_P95_BOUND_MS
    assert late["generator_saturated"] is True and "sends left late" in late["generator_saturated_reason"]
    on_time = generator_figures(None, _samples(200, lambda i: 2.0), 0.0)
    assert on_time["generator"]["lateness_ms"]["p50"] == pytest.approx(2.0)
    assert on_time["generator_saturated"] is False


def test_lateness_is_per_arrival_a_second_request_of_one_arrival_is_not_late() -> None:
    df = _samples(40, lambda i: 1.0)
    df.loc[20:, "intended"] = df.loc[:19, "intended"].to_numpy()  # each arrival: a login, then the operation
    out = generator_figures(None, df, 0.0)
    assert out["generator"]["lateness_ms"]["arrivals"] == 20
    assert out["generator"]["lateness_ms"]["max"] == pytest.approx(1.0)


def test_no_samples_no_figures() -> None:
    out = generator_figures(_cpu_series([1.0, 1.0]), _samples(0, None), 0.0)
    assert out == {"generator": None, "generator_saturated": False, "generator_saturated_reason": None}


# -- a short real run -----------------------------------------------------------------------------------------
@pytest.mark.integration
def test_a_run_records_interference_and_generator_cpu_per_scenario(new_db: Callable[[], str],
                                                                   tmp_path: Path) -> None:
    printed = io.StringIO()
    opts = RunOptions(scenarios_path=TINY, scenarios=["steady"], quick=True, checks=False, notifications=False,
                      out=tmp_path / "out", dsn=new_db(), own_database=True)
    outcome = execute(opts, narrate_to(Console(file=printed, width=200)))
    assert outcome.status == "completed", outcome.reason
    entry = manifest_file.read(outcome.run_dir).scenarios["steady"]
    assert entry.interference is not None and entry.interference["samples"] >= 1
    for key in ("outside_cores", "outside_cpu_share", "outside_cpu_s", "steal_share", "load_avg_mean",
                "load_avg_max", "available_mb_min", "own_cores"):
        assert entry.interference[key] is not None
    assert entry.generator_cpu is not None and "locust" in entry.generator_cpu["processes"]
    assert "steady machine: other processes used" in printed.getvalue()
    summary = analyse_run(outcome.run_dir).scenarios["steady"]
    assert summary.generator is not None
