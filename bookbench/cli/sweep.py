"""`bookbench sweep`: P95 and throughput per index set against the number of appointments, in one chart."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated

import typer

from bookbench.cli.common import (
    AllowRemoteOpt,
    DataDirOpt,
    DsnOpt,
    IndexDirOpt,
    console,
    handle_errors,
    split_list,
    stop_on_signals,
)
from bookbench.cli.index_sets import sets_to_apply
from bookbench.config.scenarios import SHIPPED_SCENARIOS
from bookbench.errors import EnvironmentFailure, UsageError

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([kKmM]?)$")


def parse_size(text: str) -> int:
    """'10k' -> 10000, '1M' -> 1000000, '2500' -> 2500."""
    match = _SIZE.match(text.strip())
    if not match:
        raise typer.BadParameter(f"{text!r} is not a size like 10k, 100k or 1M", param_hint="--sizes")
    factor = {"": 1, "k": 1_000, "m": 1_000_000}[match[2].lower()]
    return int(float(match[1]) * factor)


@handle_errors
def sweep(
    sizes: Annotated[str, typer.Option("--sizes", help="appointment counts, e.g. 10k,100k,1M")] = "10k,100k,1M",
    sets: Annotated[str | None, typer.Option(
        "--sets", show_default=False,
        help="index sets to measure at each size (default none,recommended; with --dsn: required)")] = None,
    scenario: Annotated[str, typer.Option("--scenario", help="the scenario measured at each point")] = "burst",
    quick: Annotated[bool, typer.Option("--quick", help="the file's quick_factor durations")] = False,
    duration_factor: Annotated[float, typer.Option("--duration-factor", min=0.01, max=10)] = 0.5,
    out: Annotated[Path, typer.Option("--out")] = Path("results"),
    scenario_file: Annotated[Path, typer.Option("--scenario-file")] = SHIPPED_SCENARIOS,
    allow_remote: AllowRemoteOpt = False,
    index_dir: IndexDirOpt = None,  # read through the environment by every stage (db.indexes)
    dsn: DsnOpt = None, data_dir: DataDirOpt = None,
) -> None:
    """Why an index does nothing at 2 MB and everything at 1M rows: one chart of P95 and throughput vs size."""
    from bookbench.artifacts.folder import new_folder
    from bookbench.db import indexes
    from bookbench.pipeline import sweep as stage

    counts = [parse_size(s) for s in split_list(sizes)]
    names = sets_to_apply(sets, "none,recommended", dsn)
    if not counts or not names:
        raise UsageError("--sizes and --sets must each name at least one value")
    for name in names:
        indexes.load_set(name)
    plan = stage.SweepPlan(sizes=counts, sets=names, scenario=scenario, quick=quick, duration_factor=duration_factor,
                           scenario_file=scenario_file, folder=new_folder(out, "sweep"), allow_remote=allow_remote,
                           argv=["bookbench", *sys.argv[1:]])
    stop_on_signals()
    points, stopped = stage.measure(plan, dsn, data_dir, console)
    page = stage.write(plan, points, stopped)
    for name, pts in points.items():
        for p in pts:
            p95 = "-" if p["p95_ms"] is None else f"{p['p95_ms']:.1f}"
            console.print(f"  {name:<12} {p['appointments']:>10,} appointments: P95 {p95} ms, "
                          f"{p['throughput_rps']:.1f} req/s (n={p['requests']:,})")
    console.print(f"sweep: {page}")
    if stopped:
        console.print(f"[yellow]{stage.stopped_words(stopped, points)}[/]")
    print(plan.folder, flush=True)
    if stopped and stopped["status"] == "interrupted":
        raise KeyboardInterrupt
    if stopped:
        raise EnvironmentFailure(f"the sweep stopped at {stopped['at']}: {stopped['reason']}")
