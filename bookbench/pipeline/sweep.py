"""The sweep stage: one scenario under each index set at each data size, then sweep.json and sweep.html."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from bookbench.artifacts import summary as summary_file
from bookbench.artifacts.files import write_json
from bookbench.errors import EnvironmentFailure
from bookbench.pipeline.analyse import report
from bookbench.pipeline.run import RunOptions, execute
from bookbench.pipeline.stack import database
from bookbench.report import charts, render

SWEEP_FORMAT_VERSION = 1


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
    sc = summary_file.read(run_dir)["scenarios"][scenario]
    return {"p95_ms": sc["latency_ms"]["p95"], "throughput_rps": sc["throughput_rps"], "requests": sc["requests"],
            "run": str(run_dir)}


def measure(plan: SweepPlan, dsn: str | None, data_dir: Path | None,
            console: Console) -> tuple[dict[str, list[dict[str, Any]]], bool]:
    """(points per set, interrupted): every size x set once; a Ctrl-C keeps the points measured so far."""
    points: dict[str, list[dict[str, Any]]] = {n: [] for n in plan.sets}
    anchor = dt.datetime.now(dt.UTC).date()  # one dataset date for every run, even across midnight
    with database(dsn, data_dir) as url:
        try:
            for size in plan.sizes:
                for name in plan.sets:
                    console.rule(f"[bold]{size:,} appointments, {name}[/]")
                    outcome = execute(RunOptions(
                        scenarios_path=plan.scenario_file, scenarios=[plan.scenario], index_set=name,
                        dataset_overrides={"appointments": size}, quick=plan.quick,
                        duration_factor=plan.duration_factor, out=plan.folder / "runs", dsn=url,
                        allow_remote=plan.allow_remote, anchor=anchor, checks=False, argv=plan.argv), console)
                    if outcome.status == "interrupted":
                        raise KeyboardInterrupt
                    if outcome.status != "completed":
                        raise EnvironmentFailure(outcome.reason or f"the {name} run at {size:,} failed")
                    report(outcome.run_dir)
                    points[name].append({"appointments": size, **_point(outcome.run_dir, plan.scenario)})
        except KeyboardInterrupt:
            return points, True
    return points, False


def write(plan: SweepPlan, points: dict[str, list[dict[str, Any]]]) -> Path:
    write_json(plan.folder / "sweep.json",
               {"format_version": SWEEP_FORMAT_VERSION, "scenario": plan.scenario, "points": points})
    chart = charts.size_sweep({n: [(p["appointments"], p["p95_ms"] or 0.0, p["throughput_rps"]) for p in pts]
                               for n, pts in points.items() if pts}, f"{plan.scenario}: cost against data size")
    html = render.jinja().get_template("sweep.html.j2").render(
        scenario=plan.scenario, points=points, chart=chart, generated=render.now(),
        method="P95 and throughput of each run's summary.json")
    return render.write_page(plan.folder / "sweep.html", html)
