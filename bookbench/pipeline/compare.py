"""The compare and calibrate stages: variants measured in interleaved rounds, then compare.json, compare.html and
(for calibrate) the stored run-to-run spread. Typed inputs in, a comparison folder out."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from bookbench.analysis import calibration, comparison
from bookbench.artifacts import manifest as manifest_file
from bookbench.artifacts import summary as summary_file
from bookbench.artifacts.comparison import write_calibration_file, write_comparison
from bookbench.artifacts.folder import existing_run
from bookbench.artifacts.manifest import RunStatus
from bookbench.db.embedded import default_data_dir
from bookbench.pipeline.analyse import ensure_analysed, review_page
from bookbench.pipeline.run import RunOptions, execute
from bookbench.pipeline.schedule import Order, round_order
from bookbench.pipeline.stack import database
from bookbench.report import render_compare


def calibration_path(explicit: Path | None) -> Path:
    return explicit or default_data_dir().parent / "calibration.json"


def load_store(path: Path) -> dict[str, Any] | None:
    """The calibration store, or None before the first `bookbench calibrate`."""
    return calibration.read(path) if path.exists() else None


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
        existing_run(d)
        by_set.setdefault(manifest_file.read(d).index_set.name, []).append(d)
    if len(by_set) == 1:
        (name, runs), = by_set.items()
        return {label: [d] for label, d in zip(variant_labels([name] * len(runs)), runs, strict=True)}
    return by_set


def finish(folder: Path, variants: dict[str, list[Path]], noise: float, force: bool,
           store: dict[str, Any] | None, console: Console, measured: dict[str, Any] | None = None) -> dict[str, Any]:
    """Analyse every run, compare, write compare.json and compare.html. Runs that cannot be compared raise
    NotComparable (a usage error): a compare never ends quietly without a comparison."""
    for runs in variants.values():
        for d in runs:
            ensure_analysed(d)
    result = comparison.build(variants, noise, force=force, calibration_store=store)
    if measured is not None:
        result["calibration"] = measured  # calibrate: the spread these A/A rounds measured, shown on the page
    write_comparison(folder, result)
    first_runs = {label: runs[0] for label, runs in variants.items()}
    review = None
    if result.get("best"):
        path, rv = review_page(first_runs[result["best"]], first_runs[result["baseline"]])
        review = {"decision": rv.decision, "caveats": rv.caveats, "headline": rv.headline,
                  "recommendation": rv.recommendation, "link": os.path.relpath(path, folder)}
    page = render_compare.compare_page(folder, result, {s: summary_file.read(d) for s, d in first_runs.items()},
                                       review)
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
    argv: list[str]
    delay_last_ms: float = 0.0  # calibration only: the last variant's service adds this CPU work per request
    target: str | None = None  # a target profile (None: the reference service's)
    target_url: str | None = None  # a running deployment instead of the reference service bookbench starts
    cleanup: bool = False  # each run deletes its own bookings on a database bookbench did not seed
    order: Order = "balanced"  # the variants' order inside each round (pipeline.schedule)
    labels: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.labels = variant_labels(self.sets)
        if self.delay_last_ms:
            self.labels[-1] += f" (+{self.delay_last_ms:g} ms)"


def record_place(run_dir: Path, round_no: int, position: int) -> None:
    """Write the run's round (1-based) and position (0-based) into its manifest; the run stage does not know
    about rounds, and the analysis reads the position from here."""
    if not manifest_file.path_in(run_dir).exists():  # a run that failed before writing one
        return
    man = manifest_file.read(run_dir)
    manifest_file.write(run_dir, man.model_copy(update={"round": round_no, "position": position}))


def measure(plan: Plan, dsn: str | None, data_dir: Path | None,
            console: Console) -> tuple[dict[str, list[Path]], RunStatus, str | None]:
    """Run every variant once per round, interleaved, so that drift of the machine hits every variant alike; by
    default in counterbalanced order (A B, B A, ...; a Williams design for more variants) so that an effect of
    a run's place in its round cancels and can be measured. Checks run in the first round only: they judge the
    service, not the timing."""
    variants: dict[str, list[Path]] = {label: [] for label in plan.labels}
    anchor = dt.datetime.now(dt.UTC).date()  # one dataset date for every run, even across midnight
    with database(dsn, data_dir) as url:
        for round_no in range(plan.rounds):
            for position, i in enumerate(round_order(len(plan.sets), round_no, plan.order)):
                label, name = plan.labels[i], plan.sets[i]
                console.rule(f"[bold]{label}[/] (round {round_no + 1}/{plan.rounds}, run {position + 1} of "
                             f"{len(plan.sets)})")
                outcome = execute(RunOptions(
                    scenarios_path=plan.scenario_file, scenarios=plan.scenarios, index_set=name,
                    dataset_overrides=plan.overrides, quick=plan.quick, duration_factor=plan.duration_factor,
                    out=plan.out_folder / "runs", dsn=url, notifications=False, allow_remote=plan.allow_remote,
                    anchor=anchor, own_database=dsn is None, target=plan.target, target_url=plan.target_url,
                    cleanup=plan.cleanup,
                    workers=plan.workers, key_secret=plan.key_secret, checks=not plan.quick and round_no == 0,
                    calibration_delay_ms=plan.delay_last_ms if i == len(plan.sets) - 1 else 0.0,
                    argv=plan.argv), console)
                record_place(outcome.run_dir, round_no + 1, position)
                if outcome.status != "completed":
                    return variants, outcome.status, f"{label}: {outcome.reason}"
                variants[label].append(outcome.run_dir)
    return variants, "completed", None


def calibrate_from(folder: Path, variants: dict[str, list[Path]], noise: float, store_path: Path,
                   previous: dict[str, Any] | None, console: Console) -> dict[str, Any]:
    """The spread of A/A rounds, stored; the A/A is also compared as compare would have judged it before this
    calibration, so false verdicts show up on the page."""
    for group in variants.values():
        for d in group:
            ensure_analysed(d)
    a_runs, b_runs = variants.values()
    result = calibration.from_runs(a_runs, b_runs, calibration_id=folder.name, noise=noise)
    finish(folder, variants, noise, False, previous, console, measured=result)
    write_calibration_file(folder / "calibration.json", result)
    calibration.write(store_path, result)
    return result
