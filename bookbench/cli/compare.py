"""`bookbench compare` and `bookbench calibrate`: the same scenarios on the same data under each index set, in
interleaved rounds, then the statistics that say whether a difference is larger than this machine's run-to-run
noise."""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bookbench.cli.common import (
    AllowRemoteOpt,
    DataDirOpt,
    DsnOpt,
    IndexDirOpt,
    KeySecretOpt,
    MaybeAppointmentsOpt,
    MaybeContactsOpt,
    MaybeOrgsOpt,
    MaybeSeedOpt,
    TargetOpt,
    TargetUrlOpt,
    console,
    handle_errors,
    split_list,
    stop_on_signals,
)
from bookbench.cli.index_sets import deployment_url, sets_to_apply
from bookbench.config.dataset import DEFAULT_KEY_SECRET
from bookbench.config.scenarios import SHIPPED_SCENARIOS, load_scenarios
from bookbench.errors import EnvironmentFailure, UsageError
from bookbench.pipeline.schedule import Order

if TYPE_CHECKING:
    from bookbench.artifacts.comparison import Calibration

QUICK_SCENARIOS = ["burst"]
DEFAULT_SETS = "none,seed,recommended"
# Three interleaved rounds at 15 % of the file's durations: the run-to-run spread then comes from the rounds
# themselves, and `make demo` (three sets) stays within 8 minutes on 2 cores.
DEFAULT_ROUNDS = 3
DEFAULT_DURATION_FACTOR = 0.15

CalibrationOpt = Annotated[Path | None, typer.Option(
    "--calibration", envvar="BOOKBENCH_CALIBRATION",
    help="calibration store written by `bookbench calibrate` (default: beside the embedded cluster)")]


def _exit_for(status: str, reason: str | None) -> None:
    if status == "interrupted":
        raise KeyboardInterrupt
    if status != "completed":
        raise EnvironmentFailure(f"run {status}: {reason}")


RepeatOpt = Annotated[int, typer.Option("--repeat", "--rounds", min=1, max=20,
                                        help="rounds: each set runs once per round (see --order)")]
ScenariosOpt = Annotated[str | None, typer.Option(
    "--scenarios", help="comma-separated (default: all; with --quick: burst)")]
QuickOpt = Annotated[bool, typer.Option("--quick", help="the file's quick_factor durations, burst only, no checks")]
FactorOpt = Annotated[float, typer.Option(
    "--duration-factor", min=0.01, max=10, help="scale every scenario duration (ignored with --quick)")]
OutOpt = Annotated[Path, typer.Option("--out", help="parent folder")]
FileOpt = Annotated[Path, typer.Option("--scenario-file")]
WorkersOpt = Annotated[int, typer.Option("--workers", min=0, max=64, help="Locust worker processes")]


class OrderChoice(enum.StrEnum):
    balanced = "balanced"
    fixed = "fixed"


OrderOpt = Annotated[OrderChoice, typer.Option(
    "--order",
    help="run order inside each round: balanced alternates it (A B, B A, ...; a Williams design for more sets) so "
         "that an effect of a run's place in its round cancels and is measured; fixed runs A B C every round")]


def _order(value: OrderChoice) -> Order:
    return "fixed" if value is OrderChoice.fixed else "balanced"


@handle_errors
def compare(
    sets: Annotated[str | None, typer.Option(
        "--sets", show_default=False, help="index sets, the first is the baseline; a set named twice is an A/A "
        f"(labelled set#2); default {DEFAULT_SETS} (with --dsn: required, the sets are applied there)")] = None,
    repeat: RepeatOpt = DEFAULT_ROUNDS,
    scenarios: ScenariosOpt = None,
    quick: QuickOpt = False,
    duration_factor: FactorOpt = DEFAULT_DURATION_FACTOR,
    appointments: MaybeAppointmentsOpt = None,
    contacts: MaybeContactsOpt = None,
    orgs: MaybeOrgsOpt = None,
    seed: MaybeSeedOpt = None,
    out: OutOpt = Path("results"),
    scenario_file: FileOpt = SHIPPED_SCENARIOS,
    runs: Annotated[str | None, typer.Option(
        "--runs", help="compare these existing run folders (comma-separated) instead of running")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="compare runs of different data or scenarios, or (--runs) runs that did not complete; the "
        "page marks them")] = False,
    calibration_file: CalibrationOpt = None,
    delay_last_ms: Annotated[float, typer.Option(
        "--calibration-delay-ms", min=0, max=1000,
        help="calibration only: the last set's service adds this much CPU work to every request, a known "
             "slowdown for checking that compare finds it")] = 0.0,
    workers: WorkersOpt = 0,
    key_secret: KeySecretOpt = DEFAULT_KEY_SECRET,
    allow_remote: AllowRemoteOpt = False,
    target: TargetOpt = None,
    target_url: TargetUrlOpt = None,
    cleanup: Annotated[bool, typer.Option(
        "--cleanup", help="with --target-url: each run deletes exactly its own bookings at its end, so that every "
        "variant starts from the same rows")] = False,
    order: OrderOpt = OrderChoice.balanced,
    skip_checks: Annotated[bool, typer.Option(
        "--skip-checks", help="do not run smoke/uat/stress/preflight in the first round (each run's review then "
        "says the checks were not run)")] = False,
    index_dir: IndexDirOpt = None,  # read through the environment by every stage (db.indexes)
    dsn: DsnOpt = None, data_dir: DataDirOpt = None,
) -> None:
    """Compare index sets: every scenario under each set in interleaved rounds, with intervals that include
    run-to-run noise, and verdicts. Prints the comparison folder as its last line."""
    from bookbench.artifacts.folder import new_folder
    from bookbench.db import indexes
    from bookbench.pipeline.compare import (
        Plan,
        calibration_path,
        conclude,
        finish,
        load_store,
        measure,
        variants_from_runs,
    )
    spec = load_scenarios(scenario_file)
    store = load_store(calibration_path(calibration_file))
    if runs:
        existing = variants_from_runs([Path(p) for p in split_list(runs)], force)
        folder = new_folder(out, "compare")
        finish(folder, existing, spec.noise_threshold, force, store, console)
        print(folder, flush=True)
        return
    names = sets_to_apply(sets, DEFAULT_SETS, dsn)
    if len(names) < 2:
        raise UsageError("--sets needs at least two sets (the first is the baseline; name one set twice for an A/A)")
    for name in names:
        indexes.load_set(name)
    folder = new_folder(out, "compare")
    overrides = {k: v for k, v in {"appointments": appointments, "contacts": contacts, "orgs": orgs,
                                   "seed": seed}.items() if v is not None}
    plan = Plan(sets=names, rounds=repeat, scenarios=split_list(scenarios) or (QUICK_SCENARIOS if quick else None),
                quick=quick, duration_factor=duration_factor, overrides=overrides, scenario_file=scenario_file,
                out_folder=folder, workers=workers, key_secret=key_secret, allow_remote=allow_remote,
                argv=["bookbench", *sys.argv[1:]], delay_last_ms=delay_last_ms, target=target,
                target_url=deployment_url(target_url, dsn), cleanup=cleanup, order=_order(order),
                checks=not skip_checks)
    stop_on_signals()
    measured = measure(plan, dsn, data_dir, console)
    conclude(folder, measured, spec.noise_threshold, force, store, console)
    print(folder, flush=True)
    _exit_for(measured.status, measured.reason)


@handle_errors
def calibrate(
    index_set: Annotated[str | None, typer.Option(
        "--set", show_default=False,
        help="the index set measured against itself (default recommended; with --dsn: required)")] = None,
    rounds: Annotated[int, typer.Option("--rounds", min=2, max=30, help="A/A rounds (pairs of runs)")] = 5,
    scenarios: ScenariosOpt = None,
    quick: QuickOpt = False,
    duration_factor: FactorOpt = DEFAULT_DURATION_FACTOR,
    appointments: MaybeAppointmentsOpt = None,
    out: OutOpt = Path("results"),
    scenario_file: FileOpt = SHIPPED_SCENARIOS,
    runs: Annotated[str | None, typer.Option(
        "--runs", help="calibrate from existing run folders of one set, in round order (A B A B ...)")] = None,
    calibration_file: CalibrationOpt = None,
    workers: WorkersOpt = 0,
    key_secret: KeySecretOpt = DEFAULT_KEY_SECRET,
    allow_remote: AllowRemoteOpt = False,
    order: OrderOpt = OrderChoice.balanced,
    index_dir: IndexDirOpt = None,  # read through the environment by every stage (db.indexes)
    dsn: DsnOpt = None, data_dir: DataDirOpt = None,
) -> None:
    """Measure this machine's run-to-run noise: the same set against itself in interleaved A/A rounds. Stores the
    spread per scenario and metric, which every later compare of the same scenarios uses as its noise floor."""
    from bookbench.analysis.comparison import unfinished_runs
    from bookbench.artifacts.folder import existing_run, new_folder
    from bookbench.db import indexes
    from bookbench.pipeline.compare import (
        Plan,
        calibrate_from,
        calibration_path,
        load_store,
        measure,
        report_runs,
        variant_labels,
    )
    spec = load_scenarios(scenario_file)
    store_path = calibration_path(calibration_file)
    previous = load_store(store_path)
    index_set = sets_to_apply(index_set, "recommended", None if runs else dsn, "--set")[0]
    status: str = "completed"
    reason: str | None = None
    if runs:
        given = [Path(p) for p in split_list(runs)]
        if len(given) < 4 or len(given) % 2:
            raise UsageError("--runs needs an even number (>= 4) of run folders of one set, A B A B ...")
        for d in given:
            existing_run(d)
        unfinished = unfinished_runs(given)
        if unfinished:  # a stopped run's spread is the stop's, not this machine's noise: never stored
            raise UsageError("runs that did not complete cannot calibrate:\n  " + "\n  ".join(unfinished))
        labels = variant_labels([index_set, index_set])
        variants = {labels[0]: given[0::2], labels[1]: given[1::2]}
        folder = new_folder(out, "calibrate")
    else:
        indexes.load_set(index_set)
        folder = new_folder(out, "calibrate")
        overrides = {"appointments": appointments} if appointments is not None else {}
        plan = Plan(sets=[index_set, index_set], rounds=rounds,
                    scenarios=split_list(scenarios) or (QUICK_SCENARIOS if quick else None), quick=quick,
                    duration_factor=duration_factor, overrides=overrides, scenario_file=scenario_file,
                    out_folder=folder, workers=workers, key_secret=key_secret, allow_remote=allow_remote,
                    argv=["bookbench", *sys.argv[1:]], order=_order(order))
        stop_on_signals()
        measured = measure(plan, dsn, data_dir, console)
        variants, status, reason = measured.variants, measured.status, measured.reason
        if status != "completed":
            # a calibration from fewer rounds than asked is not stored; the runs it made keep their reports
            report_runs([d for _, d in measured.made], console)
            console.print(f"[yellow]calibration not stored: {status} in round {measured.stopped_in} of {rounds}[/]")
    if status == "completed":
        result = calibrate_from(folder, variants, spec.noise_threshold, store_path, previous, console)
        _print_calibration(result)
        console.print(f"calibration stored in {store_path}")
    print(folder, flush=True)
    _exit_for(status, reason)


def _print_calibration(result: Calibration) -> None:
    console.print(f"run-to-run noise over {result.rounds} A/A round(s) of {result.index_set}:")
    for name, sc in result.scenarios.items():
        for metric, m in sc.metrics.items():
            det = m.detectable_pct
            console.print(f"  {name:10} {metric:10} one run wanders {m.run_to_run_pct:5.1f} %; with 3 rounds "
                          f"compare detects changes > {det['3']:.0f} % (5 rounds: > {det['5']:.0f} %)")
