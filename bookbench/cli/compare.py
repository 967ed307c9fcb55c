"""`bookbench compare` and `bookbench calibrate`: the same scenarios on the same data under each index set, in
interleaved rounds, then the statistics that say whether a difference is larger than this machine's run-to-run
noise."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from bookbench.analysis import calibration, comparison
from bookbench.cli.common import (
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
from bookbench.db import indexes
from bookbench.db.embedded import default_data_dir
from bookbench.db.seed import DEFAULT_KEY_SECRET
from bookbench.pipeline.run import RunOptions, execute
from bookbench.pipeline.stack import database
from bookbench.report import render, render_compare
from bookbench.spec.scenarios import SHIPPED_SCENARIOS, ScenarioFileError, load_scenarios

QUICK_SCENARIOS = ["burst"]
# Three interleaved rounds at 15 % of the file's durations: the run-to-run spread then comes from the rounds
# themselves, and `make demo` (three sets) stays within 8 minutes on 2 cores.
DEFAULT_ROUNDS = 3
DEFAULT_DURATION_FACTOR = 0.15

CalibrationOpt = Annotated[Path | None, typer.Option(
    "--calibration", envvar="BOOKBENCH_CALIBRATION",
    help="calibration store written by `bookbench calibrate` (default: beside the embedded cluster)")]


def calibration_path(explicit: Path | None) -> Path:
    return explicit or default_data_dir().parent / "calibration.json"


def variant_labels(sets: list[str]) -> list[str]:
    """One label per variant: the set's name, and `name#2`, `name#3` when a set is measured again (an A/A)."""
    seen: dict[str, int] = {}
    labels = []
    for name in sets:
        seen[name] = seen.get(name, 0) + 1
        labels.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return labels


def variants_from_runs(run_dirs: list[Path]) -> dict[str, list[Path]]:
    """Group existing run folders by index set, in the order given (the first set is the baseline; the i-th run
    of each set makes round i). Runs that are all of one set are an A/A: each run is its own variant."""
    by_set: dict[str, list[Path]] = {}
    for d in run_dirs:
        if not (d / "manifest.json").exists():
            err_console.print(f"[red]{d} is not a run folder[/] (no manifest.json)")
            raise typer.Exit(EXIT_USAGE)
        name = json.loads((d / "manifest.json").read_text())["index_set"]["name"]
        by_set.setdefault(name, []).append(d)
    if len(by_set) == 1:
        (name, runs), = by_set.items()
        return {label: [d] for label, d in zip(variant_labels([name] * len(runs)), runs, strict=True)}
    return by_set


def _load_store(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        return calibration.read(path)
    except calibration.CalibrationError as exc:
        err_console.print(f"[red]invalid calibration:[/] {exc}")
        raise typer.Exit(EXIT_USAGE) from None


def finish(folder: Path, variants: dict[str, list[Path]], noise: float, force: bool,
           store: dict[str, Any] | None, measured: dict[str, Any] | None = None) -> dict[str, Any]:
    """Analyse every run, compare, write compare.json and compare.html; a compare that cannot compare is an
    error, never a silent exit 0."""
    for runs in variants.values():
        for d in runs:
            if not (d / "summary.json").exists():
                render.report(d)
    try:
        result = comparison.build(variants, noise, force=force, calibration_store=store)
    except comparison.NotComparable as exc:
        err_console.print(f"[red]refused:[/] {exc}")
        raise typer.Exit(EXIT_USAGE) from None
    if measured is not None:
        result["calibration"] = measured  # calibrate: the spread these A/A rounds measured, shown on the page
    comparison.write(folder, result)
    page = render_compare.compare_page(folder, result)
    console.print(f"[bold]{result['headline']}[/]")
    console.print(f"comparison: {page}")
    return result


@dataclass
class Plan:
    """What a compare or calibrate measures: variants in round order and how each run is shaped."""

    sets: list[str]
    rounds: int
    scenarios: list[str] | None
    quick: bool
    duration_factor: float
    overrides: dict[str, int]
    scenario_file: Path
    out_folder: Path
    workers: int
    key_secret: str
    allow_remote: bool
    delay_last_ms: float = 0.0  # calibration only: the last variant's service adds this CPU work per request
    labels: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.labels = variant_labels(self.sets)
        if self.delay_last_ms:
            self.labels[-1] += f" (+{self.delay_last_ms:g} ms)"


def measure(plan: Plan, dsn: str | None, data_dir: Path | None) -> tuple[dict[str, list[Path]], str]:
    """Run every variant once per round, interleaved (A B C A B C ...), so that drift of the machine hits every
    variant alike. Checks run in the first round only: they judge the service, not the timing."""
    stop_on_signals()
    variants: dict[str, list[Path]] = {label: [] for label in plan.labels}
    status = "completed"
    anchor = dt.datetime.now(dt.UTC).date()  # one dataset date for every run, even across midnight
    with database(dsn, data_dir) as url:
        for round_no in range(plan.rounds):
            for i, (label, name) in enumerate(zip(plan.labels, plan.sets, strict=True)):
                console.rule(f"[bold]{label}[/] (round {round_no + 1}/{plan.rounds})")
                outcome = execute(RunOptions(
                    scenarios_path=plan.scenario_file, scenarios=plan.scenarios, index_set=name,
                    dataset_overrides=plan.overrides, quick=plan.quick, duration_factor=plan.duration_factor,
                    out=plan.out_folder / "runs", dsn=url, allow_remote=plan.allow_remote, anchor=anchor,
                    workers=plan.workers, key_secret=plan.key_secret, checks=not plan.quick and round_no == 0,
                    calibration_delay_ms=plan.delay_last_ms if i == len(plan.sets) - 1 else 0.0,
                    argv=["bookbench", *sys.argv[1:]]), console)
                if outcome.status != "completed":
                    err_console.print(f"[red]{label} run {outcome.status}:[/] {outcome.reason}")
                    return variants, outcome.status
                variants[label].append(outcome.run_dir)
    return variants, status


def _exit_for(status: str) -> None:
    if status == "interrupted":
        raise typer.Exit(EXIT_INTERRUPTED)
    if status != "completed":
        raise typer.Exit(EXIT_ENVIRONMENT)


def _split(text: str | None) -> list[str]:
    return [s.strip() for s in (text or "").split(",") if s.strip()]


RepeatOpt = Annotated[int, typer.Option("--repeat", "--rounds", min=1, max=20,
                                        help="rounds: each set runs once per round, interleaved A B C A B C")]
ScenariosOpt = Annotated[str | None, typer.Option(
    "--scenarios", help="comma-separated (default: all; with --quick: burst)")]
QuickOpt = Annotated[bool, typer.Option("--quick", help="the file's quick_factor durations, burst only, no checks")]
FactorOpt = Annotated[float, typer.Option(
    "--duration-factor", min=0.01, max=10, help="scale every scenario duration (ignored with --quick)")]
OutOpt = Annotated[Path, typer.Option("--out", help="parent folder")]
FileOpt = Annotated[Path, typer.Option("--scenario-file")]
AppointmentsOpt = Annotated[int | None, typer.Option("--appointments", min=0, help="dataset size")]
WorkersOpt = Annotated[int, typer.Option("--workers", min=0, max=64, help="Locust worker processes")]


@handle_errors
def compare(
    sets: Annotated[str, typer.Option("--sets", help="index sets, the first is the baseline; a set named twice "
                                                     "is an A/A (labelled set#2)")] = "none,seed,recommended",
    repeat: RepeatOpt = DEFAULT_ROUNDS,
    scenarios: ScenariosOpt = None,
    quick: QuickOpt = False,
    duration_factor: FactorOpt = DEFAULT_DURATION_FACTOR,
    appointments: AppointmentsOpt = None,
    contacts: Annotated[int | None, typer.Option("--contacts", min=1)] = None,
    orgs: Annotated[int | None, typer.Option("--orgs", min=1)] = None,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    out: OutOpt = Path("results"),
    scenario_file: FileOpt = SHIPPED_SCENARIOS,
    runs: Annotated[str | None, typer.Option(
        "--runs", help="compare these existing run folders (comma-separated) instead of running")] = None,
    force: Annotated[bool, typer.Option("--force", help="compare runs of different data or scenarios")] = False,
    calibration_file: CalibrationOpt = None,
    delay_last_ms: Annotated[float, typer.Option(
        "--calibration-delay-ms", min=0, max=1000,
        help="calibration only: the last set's service adds this much CPU work to every request, a known "
             "slowdown for checking that compare finds it")] = 0.0,
    workers: WorkersOpt = 0,
    key_secret: KeySecretOpt = DEFAULT_KEY_SECRET,
    allow_remote: AllowRemoteOpt = False,
    dsn: DsnOpt = None, data_dir: DataDirOpt = None,
) -> None:
    """Compare index sets: every scenario under each set in interleaved rounds, with intervals that include
    run-to-run noise, and verdicts. Prints the comparison folder as its last line."""
    try:
        spec = load_scenarios(scenario_file)
    except ScenarioFileError as exc:
        err_console.print(f"[red]invalid scenarios:[/] {exc}")
        raise typer.Exit(EXIT_USAGE) from None
    store = _load_store(calibration_path(calibration_file))
    folder = out / f"compare-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"
    if runs:
        existing = variants_from_runs([Path(p) for p in _split(runs)])
        folder.mkdir(parents=True)
        finish(folder, existing, spec.noise_threshold, force, store)
        print(folder, flush=True)
        return
    names = _split(sets)
    if len(names) < 2:
        err_console.print("[red]--sets needs at least two sets[/] (the first is the baseline; name one set twice "
                          "for an A/A)")
        raise typer.Exit(EXIT_USAGE)
    for name in names:
        indexes.load_set(name)
    overrides = {k: v for k, v in {"appointments": appointments, "contacts": contacts, "orgs": orgs,
                                   "seed": seed}.items() if v is not None}
    plan = Plan(sets=names, rounds=repeat, scenarios=_split(scenarios) or (QUICK_SCENARIOS if quick else None),
                quick=quick, duration_factor=duration_factor, overrides=overrides, scenario_file=scenario_file,
                out_folder=folder, workers=workers, key_secret=key_secret, allow_remote=allow_remote,
                delay_last_ms=delay_last_ms)
    variants, status = measure(plan, dsn, data_dir)
    if status == "completed":
        finish(folder, variants, spec.noise_threshold, force, store)
    print(folder, flush=True)
    _exit_for(status)


@handle_errors
def calibrate(
    index_set: Annotated[str, typer.Option("--set", help="the index set measured against itself")] = "recommended",
    rounds: Annotated[int, typer.Option("--rounds", min=2, max=30, help="A/A rounds (pairs of runs)")] = 5,
    scenarios: ScenariosOpt = None,
    quick: QuickOpt = False,
    duration_factor: FactorOpt = DEFAULT_DURATION_FACTOR,
    appointments: AppointmentsOpt = None,
    out: OutOpt = Path("results"),
    scenario_file: FileOpt = SHIPPED_SCENARIOS,
    runs: Annotated[str | None, typer.Option(
        "--runs", help="calibrate from existing run folders of one set, in round order (A B A B ...)")] = None,
    calibration_file: CalibrationOpt = None,
    workers: WorkersOpt = 0,
    key_secret: KeySecretOpt = DEFAULT_KEY_SECRET,
    allow_remote: AllowRemoteOpt = False,
    dsn: DsnOpt = None, data_dir: DataDirOpt = None,
) -> None:
    """Measure this machine's run-to-run noise: the same set against itself in interleaved A/A rounds. Stores the
    spread per scenario and metric, which every later compare of the same scenarios uses as its noise floor."""
    try:
        spec = load_scenarios(scenario_file)
    except ScenarioFileError as exc:
        err_console.print(f"[red]invalid scenarios:[/] {exc}")
        raise typer.Exit(EXIT_USAGE) from None
    store_path = calibration_path(calibration_file)
    previous = _load_store(store_path)
    folder = out / f"calibrate-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"
    if runs:
        given = [Path(p) for p in _split(runs)]
        if len(given) < 4 or len(given) % 2:
            err_console.print("[red]--runs needs an even number (>= 4) of run folders of one set[/], A B A B ...")
            raise typer.Exit(EXIT_USAGE)
        labels = variant_labels([index_set, index_set])
        variants = {labels[0]: given[0::2], labels[1]: given[1::2]}
        status = "completed"
    else:
        indexes.load_set(index_set)
        overrides = {"appointments": appointments} if appointments is not None else {}
        plan = Plan(sets=[index_set, index_set], rounds=rounds,
                    scenarios=_split(scenarios) or (QUICK_SCENARIOS if quick else None), quick=quick,
                    duration_factor=duration_factor, overrides=overrides, scenario_file=scenario_file,
                    out_folder=folder, workers=workers, key_secret=key_secret, allow_remote=allow_remote)
        variants, status = measure(plan, dsn, data_dir)
    if status == "completed":
        folder.mkdir(parents=True, exist_ok=True)
        for group in variants.values():
            for d in group:
                if not (d / "summary.json").exists():
                    render.report(d)
        a_runs, b_runs = variants.values()
        result = calibration.from_runs(a_runs, b_runs, calibration_id=folder.name, noise=spec.noise_threshold)
        # the A/A as compare would have judged it before this calibration: false verdicts show up here
        finish(folder, variants, spec.noise_threshold, False, previous, measured=result)
        (folder / "calibration.json").write_text(json.dumps(result, indent=1))
        calibration.write(store_path, result)
        _print_calibration(result)
        console.print(f"calibration stored in {store_path}")
    print(folder, flush=True)
    _exit_for(status)


def _print_calibration(result: dict[str, Any]) -> None:
    console.print(f"run-to-run noise over {result['rounds']} A/A round(s) of {result['index_set']}:")
    for name, sc in result["scenarios"].items():
        for metric, m in sc["metrics"].items():
            det = m["detectable_pct"]
            console.print(f"  {name:10} {metric:10} one run wanders {m['run_to_run_pct']:5.1f} %; with 3 rounds "
                          f"compare detects changes > {det['3']:.0f} % (5 rounds: > {det['5']:.0f} %)")
