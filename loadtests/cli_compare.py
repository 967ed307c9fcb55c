"""`bookbench compare`: the same scenarios on the same data under each index set, then the statistics that say
whether the difference is real."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import sys
from pathlib import Path
from typing import Annotated

import typer

from loadtests.cli_common import (
    EXIT_ENVIRONMENT,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    AllowRemoteOpt,
    DataDirOpt,
    DsnOpt,
    KeySecretOpt,
    console,
    err_console,
    handle_errors,
    stop_on_signals,
)
from loadtests.db import indexes
from loadtests.db.conn import REPO_ROOT
from loadtests.db.dataset import DEFAULT_KEY_SECRET
from loadtests.orchestrate import RunOptions, execute
from loadtests.scenario_model import ScenarioFileError, load_scenarios
from loadtests.stack import database
from reports import comparison, render, render_compare

QUICK_SCENARIOS = ["burst"]


def _variants_from_runs(run_dirs: list[Path]) -> dict[str, list[Path]]:
    """Group existing run folders by index set, in the order given (the first set is the baseline)."""
    variants: dict[str, list[Path]] = {}
    for d in run_dirs:
        if not (d / "manifest.json").exists():
            err_console.print(f"[red]{d} is not a run folder[/] (no manifest.json)")
            raise typer.Exit(EXIT_USAGE)
        name = json.loads((d / "manifest.json").read_text())["index_set"]["name"]
        variants.setdefault(name, []).append(d)
    return variants


def _finish(folder: Path, variants: dict[str, list[Path]], noise: float, force: bool) -> None:
    for runs in variants.values():
        for d in runs:
            if not (d / "summary.json").exists():
                render.report(d)
    try:
        result = comparison.build(variants, noise, force=force)
    except comparison.NotComparable as exc:
        err_console.print(f"[red]refused:[/] {exc}")
        raise typer.Exit(EXIT_USAGE) from None
    comparison.write(folder, result)
    page = render_compare.compare_page(folder, result)
    console.print(f"[bold]{result['headline']}[/]")
    console.print(f"comparison: {page}")


@handle_errors
def compare(
    sets: Annotated[str, typer.Option("--sets", help="index sets, the first is the baseline")] = (
        "none,seed,recommended"),
    repeat: Annotated[int, typer.Option("--repeat", min=1, max=20,
                                        help="runs per set, interleaved A B C A B C")] = 1,
    scenarios: Annotated[str | None, typer.Option(
        "--scenarios", help="comma-separated (default: all; with --quick: burst)")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="short durations, burst only, no checks")] = False,
    duration_factor: Annotated[float, typer.Option(
        "--duration-factor", min=0.01, max=10, help="scale every scenario duration (ignored with --quick)")] = 0.5,
    appointments: Annotated[int | None, typer.Option("--appointments", min=0)] = None,
    contacts: Annotated[int | None, typer.Option("--contacts", min=1)] = None,
    orgs: Annotated[int | None, typer.Option("--orgs", min=1)] = None,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    out: Annotated[Path, typer.Option("--out", help="parent folder")] = Path("results"),
    scenario_file: Annotated[Path, typer.Option("--scenario-file")] = REPO_ROOT / "scenarios.yaml",
    runs: Annotated[str | None, typer.Option(
        "--runs", help="compare these existing run folders (comma-separated) instead of running")] = None,
    force: Annotated[bool, typer.Option("--force", help="compare runs of different data or scenarios")] = False,
    workers: Annotated[int, typer.Option("--workers", min=0, max=64)] = 0,
    key_secret: KeySecretOpt = DEFAULT_KEY_SECRET,
    allow_remote: AllowRemoteOpt = False,
    dsn: DsnOpt = None, data_dir: DataDirOpt = None,
) -> None:
    """Compare index sets: every scenario under each set, interleaved, with bootstrap intervals and verdicts.
    Prints the comparison folder as its last line."""
    try:
        spec = load_scenarios(scenario_file)
    except ScenarioFileError as exc:
        err_console.print(f"[red]invalid scenarios:[/] {exc}")
        raise typer.Exit(EXIT_USAGE) from None
    folder = out / f"compare-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"
    if runs:
        existing = _variants_from_runs([Path(p.strip()) for p in runs.split(",") if p.strip()])
        folder.mkdir(parents=True)
        _finish(folder, existing, spec.noise_threshold, force)
        print(folder, flush=True)
        return
    names = [s.strip() for s in sets.split(",") if s.strip()]
    if len(names) < 2:
        err_console.print("[red]--sets needs at least two sets[/] (the first is the baseline)")
        raise typer.Exit(EXIT_USAGE)
    for name in names:
        indexes.load_set(name)
    chosen = [s.strip() for s in scenarios.split(",")] if scenarios else (QUICK_SCENARIOS if quick else None)
    overrides = {k: v for k, v in {"appointments": appointments, "contacts": contacts, "orgs": orgs,
                                   "seed": seed}.items() if v is not None}
    stop_on_signals()
    variants: dict[str, list[Path]] = {n: [] for n in names}
    status = "completed"
    anchor = dt.datetime.now(dt.UTC).date()  # one dataset date for every run, even across midnight
    with database(dsn, data_dir) as url:
        for round_no in range(repeat):
            for name in names:
                console.rule(f"[bold]{name}[/] (round {round_no + 1}/{repeat})")
                outcome = execute(RunOptions(
                    scenarios_path=scenario_file, scenarios=chosen, index_set=name, dataset_overrides=overrides,
                    quick=quick, duration_factor=duration_factor, out=folder / "runs", dsn=url,
                    allow_remote=allow_remote, anchor=anchor, workers=workers,
                    key_secret=key_secret, checks=not quick, argv=["bookbench", *sys.argv[1:]]), console)
                if outcome.status != "completed":
                    status = outcome.status
                    err_console.print(f"[red]{name} run {outcome.status}:[/] {outcome.reason}")
                    break
                variants[name].append(outcome.run_dir)
            if status != "completed":
                break
    measured = {k: v for k, v in variants.items() if v}
    if len(measured) >= 2 and status == "completed":
        _finish(folder, measured, spec.noise_threshold, force)
    print(folder, flush=True)
    if status == "interrupted":
        raise typer.Exit(EXIT_INTERRUPTED)
    if status != "completed":
        raise typer.Exit(EXIT_ENVIRONMENT)
