"""The sweep stage: one scenario under each index set at each data size, then sweep.json and sweep.html."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from bookbench.analysis import comparison, judge, wording
from bookbench.artifacts import summary as summary_file
from bookbench.artifacts.files import write_json
from bookbench.config.scenarios import load_scenarios
from bookbench.pipeline import interrupts
from bookbench.pipeline.analyse import analyse_and_render
from bookbench.pipeline.compare import calibration_path, load_store, record_place, report_runs
from bookbench.pipeline.narration import narrate_to
from bookbench.pipeline.run import RunOptions, execute
from bookbench.pipeline.schedule import round_order
from bookbench.pipeline.stack import database
from bookbench.report import charts, render

SWEEP_FORMAT_VERSION = 3  # 2: per-size comparisons and the headline; 3: `stopped` (null for a whole sweep)


@dataclass(frozen=True)
class SweepPlan:
    sizes: list[int]
    sets: list[str]
    scenario: str
    quick: bool
    duration_factor: float
    scenario_file: Path
    folder: Path
    allow_remote: bool
    argv: list[str]


def _point(run_dir: Path, scenario: str) -> dict[str, Any]:
    sc = summary_file.read(run_dir).scenarios[scenario]
    return {"p95_ms": sc.latency_ms.p95, "throughput_rps": sc.throughput_rps, "requests": sc.requests,
            "run": str(run_dir)}


def measure(plan: SweepPlan, dsn: str | None, data_dir: Path | None,
            console: Console) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any] | None]:
    """(points per set, why it stopped or None): every size x set once, the sets' order counterbalanced across
    sizes (each size is a round: A B, B A, ...) so that a slower later run is not read as a set effect that grows or
    shrinks with the size. A run that is interrupted or fails ends the sweep, keeping the points measured so far;
    the stopped run still gets its report."""
    points: dict[str, list[dict[str, Any]]] = {n: [] for n in plan.sets}
    anchor = dt.datetime.now(dt.UTC).date()  # one dataset date for every run, even across midnight
    where = "before the first run"
    with database(dsn, data_dir) as url:
        try:
            for size_no, size in enumerate(plan.sizes):
                for position, i in enumerate(round_order(len(plan.sets), size_no)):
                    name = plan.sets[i]
                    where = f"{size:,} appointments, {name}"
                    console.rule(f"[bold]{where}[/]")
                    outcome = execute(RunOptions(
                        scenarios_path=plan.scenario_file, scenarios=[plan.scenario], index_set=name,
                        dataset_overrides={"appointments": size}, quick=plan.quick,
                        duration_factor=plan.duration_factor, out=plan.folder / "runs", dsn=url, notifications=False,
                        allow_remote=plan.allow_remote, anchor=anchor, checks=False, argv=plan.argv,
                        # a sweep re-seeds each size; on a --dsn database only over a dataset bookbench wrote
                        own_database=dsn is None, reseed=True), narrate_to(console))
                    record_place(outcome.run_dir, size_no + 1, position)
                    if outcome.status != "completed":
                        report_runs([outcome.run_dir], console)
                        return points, {"status": outcome.status, "reason": outcome.reason, "at": where,
                                        "run": str(outcome.run_dir)}
                    analyse_and_render(outcome.run_dir)
                    points[name].append({"appointments": size, "position": position,
                                         **_point(outcome.run_dir, plan.scenario)})
        except KeyboardInterrupt:  # between two runs (a run's own Ctrl-C ends it as `interrupted`, above)
            return points, {"status": "interrupted", "reason": interrupts.reason(), "at": where, "run": None}
    return points, None


def stopped_words(stopped: dict[str, Any], points: dict[str, list[dict[str, Any]]]) -> str:
    """One sentence: where the sweep stopped and what the page still holds."""
    measured = sum(len(p) for p in points.values())
    why = f": {stopped['reason']}" if stopped.get("reason") else ""
    verb = "failed" if stopped["status"] == "failed" else f"was {stopped['status']}"
    return (f"This sweep {verb} at {stopped['at']}"
            f"{why}. Only the {measured} point(s) measured before are shown; the sizes after it were not run.")


def compare_sizes(plan: SweepPlan, points: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """At each size, every set against the first (the baseline) and against each other: the compare stage's
    intervals on one run per set (so the run-to-run noise comes from the calibration prior, not measured here)."""
    store = load_store(calibration_path(None))
    noise = load_scenarios(plan.scenario_file).noise_threshold
    out: dict[str, Any] = {}
    for size in plan.sizes:
        variants = {name: [Path(p["run"])] for name, pts in points.items() for p in pts if p["appointments"] == size}
        if len(variants) < 2:
            continue
        result = comparison.build(variants, noise, calibration_store=store)
        out[str(size)] = {label: row.model_dump(mode="json") for label, row in result.scenarios[plan.scenario].items()}
    return out


def headline(plan: SweepPlan, compared: dict[str, Any]) -> str:
    """One sentence from the data: how the best candidate's P95 against the baseline moves with the data size."""
    baseline = plan.sets[0]
    rows = [(int(size), name, row["vs_baseline"]["p95"]) for size, sets in compared.items()
            for name, row in sets.items() if name != baseline and "ratio" in row["vs_baseline"].get("p95", {})]
    if not rows:
        return f"Only {baseline} was measured, or no size had enough samples to compare: nothing to compare."
    largest = max(size for size, _, _ in rows)
    best = min((r for r in rows if r[0] == largest), key=lambda r: r[2]["ratio"])[1]
    mine = sorted((size, ci) for size, name, ci in rows if name == best)
    steps = "; ".join(f"at {size:,}, {wording.result('P95', ci)}" for size, ci in mine)
    first = next((size for size, ci in mine if ci["verdict"] == "improved"), None)
    start = (f"measurably lower from {first:,} appointments on" if first is not None
             else "not measurably lower at any size measured")
    return f"{plan.scenario} P95 with {best} against {baseline} is {start}: {steps}."


def write(plan: SweepPlan, points: dict[str, list[dict[str, Any]]], stopped: dict[str, Any] | None = None) -> Path:
    compared = compare_sizes(plan, points)
    text = headline(plan, compared)
    note = stopped_words(stopped, points) if stopped else None
    write_json(plan.folder / "sweep.json", {"format_version": SWEEP_FORMAT_VERSION, "scenario": plan.scenario,
                                            "points": points, "compared": compared, "headline": text,
                                            "stopped": {**stopped, "summary": note} if stopped else None})
    limit = judge.effective_limits(load_scenarios(plan.scenario_file).thresholds, plan.scenario).get("p95_ms")
    chart = charts.size_sweep({n: [(p["appointments"], p["p95_ms"] or 0.0, p["throughput_rps"]) for p in pts]
                               for n, pts in points.items() if pts}, f"{plan.scenario}: cost against data size",
                              limit)
    links = {p["run"]: os.path.relpath(Path(p["run"]) / "report.html", plan.folder)
             for pts in points.values() for p in pts}
    stopped_link = os.path.relpath(Path(stopped["run"]) / "report.html", plan.folder) \
        if stopped and stopped.get("run") else None
    html = render.jinja().get_template("sweep.html.j2").render(
        scenario=plan.scenario, points=points, chart=chart, generated=render.now(), headline=text,
        compared=compared, baseline=plan.sets[0], sizes=plan.sizes, links=links, words=wording, stopped=note,
        stopped_link=stopped_link,
        method="P95 and throughput of each run's summary.json; intervals as in bookbench compare, one run per set")
    return render.write_page(plan.folder / "sweep.html", html)
