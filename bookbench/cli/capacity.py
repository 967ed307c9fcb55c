"""`bookbench capacity`: per index set, the highest arrival rate within the P95 and error-rate limits."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from bookbench.cli.common import (
    AllowRemoteOpt,
    DataDirOpt,
    DsnOpt,
    IndexDirOpt,
    MaybeAppointmentsOpt,
    TargetOpt,
    TargetUrlOpt,
    console,
    handle_errors,
    stop_on_signals,
)
from bookbench.cli.index_sets import deployment_url, sets_to_apply
from bookbench.config.scenarios import SHIPPED_SCENARIOS
from bookbench.errors import EnvironmentFailure, UsageError


@handle_errors
def capacity(
    sets: Annotated[str | None, typer.Option(
        "--sets", show_default=False,
        help="index sets to measure (default none,seed,recommended; with --dsn: required)")] = None,
    start: Annotated[float, typer.Option("--start", min=0.1, help="first offered rate, requests/s")] = 25.0,
    max_rate: Annotated[float, typer.Option("--max", min=0.1, help="never offer more than this, requests/s")] = 6400.0,
    step_s: Annotated[float, typer.Option("--step-s", min=1, max=3600, help="seconds of load per step")] = 15.0,
    bisections: Annotated[int, typer.Option("--bisections", min=0, max=10, help="steps between hold and break")] = 3,
    quick: Annotated[bool, typer.Option("--quick", help="5 s steps and 2 bisections")] = False,
    appointments: MaybeAppointmentsOpt = None,
    out: Annotated[Path, typer.Option("--out", help="parent folder")] = Path("results"),
    scenario_file: Annotated[Path, typer.Option("--scenario-file", help="dataset, task mix and limits")] = (
        SHIPPED_SCENARIOS),
    allow_remote: AllowRemoteOpt = False,
    target: TargetOpt = None,
    target_url: TargetUrlOpt = None,
    index_dir: IndexDirOpt = None,  # read through the environment by every stage (db.indexes)
    dsn: DsnOpt = None, data_dir: DataDirOpt = None,
) -> None:
    """Double the offered rate per index set until P95 or errors break the limit, then bisect: capacity.html."""
    from bookbench.artifacts.folder import new_folder
    from bookbench.config.scenarios import load_scenarios
    from bookbench.db import indexes
    from bookbench.pipeline import capacity as stage

    names = sets_to_apply(sets, "none,seed,recommended", dsn)
    if not names:
        raise UsageError("--sets must name at least one index set")
    if start > max_rate:
        raise UsageError(f"--start {start:g} is above --max {max_rate:g}")
    for name in names:
        indexes.load_set(name)
    load_scenarios(scenario_file)  # a bad file fails before anything starts
    plan = stage.CapacityPlan(
        sets=names, start_rps=start, max_rps=max_rate, step_s=5.0 if quick else step_s,
        bisections=min(bisections, 2) if quick else bisections, scenario_file=scenario_file,
        dataset_overrides={"appointments": appointments} if appointments is not None else {},
        folder=new_folder(out, "capacity"), allow_remote=allow_remote, argv=["bookbench", *sys.argv[1:]],
        target=target, target_url=deployment_url(target_url, dsn))
    stop_on_signals()
    result = stage.measure(plan, dsn, data_dir, console)
    page = stage.write(plan, result)
    console.print(f"[bold]{stage.headline(result)}[/]")
    console.print(f"capacity: {page}")
    stopped = result.get("stopped")
    if stopped:
        console.print(f"[yellow]{stage.stopped_words(result)}[/]")
    print(plan.folder, flush=True)
    if stopped and stopped["status"] == "interrupted":
        raise KeyboardInterrupt
    if stopped:
        raise EnvironmentFailure(f"the capacity search stopped at {stopped['at']}: {stopped['reason']}")
