"""`bookbench sweep`: P95 and throughput per index set against the number of appointments, in one chart."""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from bookbench.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    AllowRemoteOpt,
    DataDirOpt,
    DsnOpt,
    console,
    err_console,
    handle_errors,
    stop_on_signals,
)
from bookbench.db import indexes
from bookbench.errors import DatabaseError
from bookbench.pipeline.run import RunOptions, execute
from bookbench.pipeline.stack import database
from bookbench.report import charts, render
from bookbench.spec.scenarios import SHIPPED_SCENARIOS

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([kKmM]?)$")


def parse_size(text: str) -> int:
    """'10k' -> 10000, '1M' -> 1000000, '2500' -> 2500."""
    match = _SIZE.match(text.strip())
    if not match:
        raise typer.BadParameter(f"{text!r} is not a size like 10k, 100k or 1M", param_hint="--sizes")
    factor = {"": 1, "k": 1_000, "m": 1_000_000}[match[2].lower()]
    return int(float(match[1]) * factor)


def _point(run_dir: Path, scenario: str) -> dict[str, Any]:
    sc = json.loads((run_dir / "summary.json").read_text())["scenarios"][scenario]
    return {"p95_ms": sc["latency_ms"]["p95"], "throughput_rps": sc["throughput_rps"], "requests": sc["requests"],
            "run": str(run_dir)}


@handle_errors
def sweep(
    sizes: Annotated[str, typer.Option("--sizes", help="appointment counts, e.g. 10k,100k,1M")] = "10k,100k,1M",
    sets: Annotated[str, typer.Option("--sets", help="index sets to measure at each size")] = "none,recommended",
    scenario: Annotated[str, typer.Option("--scenario", help="the scenario measured at each point")] = "burst",
    quick: Annotated[bool, typer.Option("--quick", help="the file's quick_factor durations")] = False,
    duration_factor: Annotated[float, typer.Option("--duration-factor", min=0.01, max=10)] = 0.5,
    out: Annotated[Path, typer.Option("--out")] = Path("results"),
    scenario_file: Annotated[Path, typer.Option("--scenario-file")] = SHIPPED_SCENARIOS,
    allow_remote: AllowRemoteOpt = False,
    dsn: DsnOpt = None, data_dir: DataDirOpt = None,
) -> None:
    """Why an index does nothing at 2 MB and everything at 1M rows: one chart of P95 and throughput vs size."""
    counts = [parse_size(s) for s in sizes.split(",") if s.strip()]
    names = [s.strip() for s in sets.split(",") if s.strip()]
    if not counts or not names:
        err_console.print("[red]--sizes and --sets must each name at least one value[/]")
        raise typer.Exit(EXIT_USAGE)
    for name in names:
        indexes.load_set(name)
    stop_on_signals()
    folder = out / f"sweep-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"
    points: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    interrupted = False
    anchor = dt.datetime.now(dt.UTC).date()  # one dataset date for every run, even across midnight
    with database(dsn, data_dir) as url:
        try:
            for size in counts:
                for name in names:
                    console.rule(f"[bold]{size:,} appointments, {name}[/]")
                    outcome = execute(RunOptions(
                        scenarios_path=scenario_file, scenarios=[scenario], index_set=name,
                        dataset_overrides={"appointments": size}, quick=quick, duration_factor=duration_factor,
                        out=folder / "runs", dsn=url, allow_remote=allow_remote, anchor=anchor, checks=False,
                        argv=["bookbench", *sys.argv[1:]]), console)
                    if outcome.status == "interrupted":
                        raise KeyboardInterrupt
                    if outcome.status != "completed":
                        raise DatabaseError(outcome.reason or f"the {name} run at {size:,} failed")
                    render.report(outcome.run_dir)
                    points[name].append({"appointments": size, **_point(outcome.run_dir, scenario)})
        except KeyboardInterrupt:
            interrupted = True
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sweep.json").write_text(json.dumps({"format_version": 1, "scenario": scenario, "points": points},
                                                  indent=1))
    chart = charts.size_sweep({n: [(p["appointments"], p["p95_ms"] or 0.0, p["throughput_rps"]) for p in pts]
                               for n, pts in points.items() if pts}, f"{scenario}: cost against data size")
    html = render.jinja().get_template("sweep.html.j2").render(
        scenario=scenario, points=points, chart=chart, generated=render.now(),
        method="P95 and throughput of each run's summary.json")
    (folder / "sweep.html").write_text(html)
    for name, pts in points.items():
        for p in pts:
            p95 = "-" if p["p95_ms"] is None else f"{p['p95_ms']:.1f}"
            console.print(f"  {name:<12} {p['appointments']:>10,} appointments: P95 {p95} ms, "
                          f"{p['throughput_rps']:.1f} req/s (n={p['requests']:,})")
    console.print(f"sweep: {folder / 'sweep.html'}")
    print(folder, flush=True)
    if interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
