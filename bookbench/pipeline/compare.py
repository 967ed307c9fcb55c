"""The compare and calibrate stages: variants measured in interleaved rounds, then compare.json, compare.html and
(for calibrate) the stored run-to-run spread. Typed inputs in, a comparison folder out."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from bookbench.analysis import calibration, comparison, wording
from bookbench.artifacts import manifest as manifest_file
from bookbench.artifacts import summary as summary_file
from bookbench.artifacts.comparison import (
    Calibration,
    CalibrationStore,
    Comparison,
    Stopped,
    StrayRun,
    write_calibration_file,
    write_comparison,
)
from bookbench.artifacts.folder import RunFolder, existing_run
from bookbench.artifacts.manifest import RunStatus
from bookbench.db.embedded import default_data_dir
from bookbench.errors import log_exception
from bookbench.pipeline import interrupts
from bookbench.pipeline.analyse import analyse_and_render, ensure_analysed, review_page
from bookbench.pipeline.narration import narrate_to
from bookbench.pipeline.run import RunOptions, execute
from bookbench.pipeline.schedule import Order, round_order
from bookbench.pipeline.stack import database
from bookbench.report import render_compare


def calibration_path(explicit: Path | None) -> Path:
    return explicit or default_data_dir().parent / "calibration.json"


def load_store(path: Path) -> CalibrationStore | None:
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


def variants_from_runs(run_dirs: list[Path], force: bool = False) -> dict[str, list[Path]]:
    """Group existing run folders by index set, in the order given (the first set is the baseline; the i-th run
    of each set makes round i). Runs that are all of one set are an A/A: each run is its own variant. Runs that
    did not complete are refused unless forced, before anything is written."""
    by_set: dict[str, list[Path]] = {}
    for d in run_dirs:
        existing_run(d)
        by_set.setdefault(manifest_file.read(d).index_set.name, []).append(d)
    unfinished = comparison.unfinished_runs(run_dirs)
    if unfinished and not force:
        raise comparison.NotComparable(comparison.unfinished_message(unfinished))
    if len(by_set) == 1:
        (name, runs), = by_set.items()
        return {label: [d] for label, d in zip(variant_labels([name] * len(runs)), runs, strict=True)}
    return by_set


def finish(folder: Path, variants: dict[str, list[Path]], noise: float, force: bool,
           store: CalibrationStore | None, console: Console, measured: Calibration | None = None,
           stopped: Stopped | None = None) -> Comparison:
    """Analyse every run, compare, write compare.json and compare.html. Runs that cannot be compared raise
    NotComparable (a usage error): a compare never ends quietly without a comparison. `stopped`: how a compare
    that ended early stopped (Measured.stopped), said in its headline, compare.json and on the page."""
    for runs in variants.values():
        for d in runs:
            ensure_analysed(d)
    result = comparison.build(variants, noise, force=force, calibration_store=store)
    if measured is not None:
        result.calibration = measured  # calibrate: the spread these A/A rounds measured, shown on the page
    return publish(folder, result, {label: runs[0] for label, runs in variants.items()}, console, stopped)


def publish(folder: Path, result: Comparison, first_runs: dict[str, Path], console: Console,
            stopped: Stopped | None = None) -> Comparison:
    """compare.json, the best set's review and compare.html from a built comparison."""
    result.stopped = stopped
    if stopped is not None:
        result.headline = f"This compare was {stopped.summary}. {result.headline}"
    write_comparison(folder, result)
    review = None
    if result.best:
        path, rv = review_page(first_runs[result.best], first_runs[result.baseline])
        review = render_compare.ReviewBrief.of(rv, path, folder)
    page = render_compare.compare_page(folder, result, {s: summary_file.read(d) for s, d in first_runs.items()},
                                       review)
    console.print(f"[bold]{result.headline}[/]")
    for line in p95_lines(result):
        console.print(line, markup=False, highlight=False)
    console.print(f"comparison: {page}")
    return result


def p95_lines(result: Comparison) -> list[str]:
    """Per scenario, each candidate's P95 against the baseline by the one wording rule, for a CI log that has no
    page: "  burst: recommended against none, improved: P95 33x lower, 95 % CI from 28x to 40x lower"."""
    return [f"  {name}: {label} against {result.baseline}, {wording.result('P95', row.vs_baseline['p95'])}"
            for name, sets in result.scenarios.items() for label, row in sets.items()
            if label != result.baseline and "p95" in row.vs_baseline]


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
    checks: bool = True  # the first round runs the pre-deployment checks (never with quick)
    labels: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.labels = variant_labels(self.sets)
        if self.delay_last_ms:
            self.labels[-1] += f" (+{self.delay_last_ms:g} ms)"


def runs_checks(plan: Plan, round_no: int) -> bool:
    """Whether the runs of round `round_no` (0-based) run the pre-deployment checks: the first round's only (they
    judge the service, not the timing), never in a quick compare or with --skip-checks."""
    return plan.checks and not plan.quick and round_no == 0


def record_place(run_dir: Path, round_no: int, position: int) -> None:
    """Write the run's round (1-based) and position (0-based) into its manifest; the run stage does not know
    about rounds, and the analysis reads the position from here."""
    if not manifest_file.path_in(run_dir).exists():  # a run that failed before writing one
        return
    man = manifest_file.read(run_dir)
    manifest_file.write(run_dir, man.model_copy(update={"round": round_no, "position": position}))


@dataclass
class Measured:
    """What measure() ended with: each variant's completed runs in round order, every run folder it made (with
    its label), and how it ended; `stopped_in` is the 1-based round it stopped in when it did not complete."""

    index_sets: dict[str, str]  # label -> index set, in the plan's order (the first is the baseline)
    rounds: int
    variants: dict[str, list[Path]]
    made: list[tuple[str, Path]] = field(default_factory=list)
    status: RunStatus = "completed"
    reason: str | None = None
    stopped_in: int | None = None
    in_round: int = 1  # the round being measured and the label of the run being started, while measuring
    starting: str = ""

    def complete_rounds(self) -> int:
        """Rounds in which every variant completed its run: only those are compared (a round is the pairing)."""
        return min(len(runs) for runs in self.variants.values())

    def compared(self) -> dict[str, list[Path]]:
        n = self.complete_rounds()
        return {label: runs[:n] for label, runs in self.variants.items()}

    def not_compared(self) -> list[tuple[str, Path]]:
        """Runs it made outside the complete rounds: a completed run of the unfinished round, the stopped one."""
        kept = {d for runs in self.compared().values() for d in runs}
        return [(label, d) for label, d in self.made if d not in kept]

    def stopped(self) -> Stopped:
        """The stop as compare.json keeps it; `summary` is the sentence the page and the terminal say."""
        n = self.complete_rounds()
        compared = f"rounds 1-{n} compared" if n else "no round was complete, nothing compared"
        return Stopped(status=self.status, round=self.stopped_in, rounds_planned=self.rounds, rounds_compared=n,
                       reason=self.reason, summary=f"{self.status} in round {self.stopped_in}: {compared}",
                       not_compared=[StrayRun(label=label, run=str(d), status=_status_of(d))
                                     for label, d in self.not_compared()])


def _status_of(run_dir: Path) -> str:
    if not manifest_file.path_in(run_dir).exists():
        return "stopped before it wrote a manifest"
    man = manifest_file.read(run_dir)
    return comparison.status_words(man.status, man.reason)


def measure(plan: Plan, dsn: str | None, data_dir: Path | None, console: Console) -> Measured:
    """Run every variant once per round, interleaved, so that drift of the machine hits every variant alike; by
    default in counterbalanced order (A B, B A, ...; a Williams design for more variants) so that an effect of
    a run's place in its round cancels and can be measured. Checks run in the first round only: they judge the
    service, not the timing. A run that does not complete, or a Ctrl-C / SIGTERM anywhere (between runs too),
    ends the measuring with what was measured kept."""
    measured = Measured(dict(zip(plan.labels, plan.sets, strict=True)), plan.rounds,
                        {label: [] for label in plan.labels})
    try:
        _measure_rounds(plan, dsn, data_dir, console, measured)
    except KeyboardInterrupt:
        measured.status, measured.reason = "interrupted", interrupts.reason()
    if measured.status != "completed":
        measured.stopped_in = measured.in_round
        _adopt_strays(plan, measured)
    return measured


def _adopt_strays(plan: Plan, measured: Measured) -> None:
    """A run folder made but never handed back (a signal between its creation and its run) still belongs to the
    variant that was starting: listed, so that nothing this compare left on disk goes unmentioned."""
    known = {d for _, d in measured.made}
    runs = plan.out_folder / "runs"
    strays = sorted(d for d in runs.iterdir() if d.is_dir() and d not in known) if runs.is_dir() else []
    measured.made += [(measured.starting, d) for d in strays]


def _measure_rounds(plan: Plan, dsn: str | None, data_dir: Path | None, console: Console,
                    measured: Measured) -> None:
    anchor = dt.datetime.now(dt.UTC).date()  # one dataset date for every run, even across midnight
    with database(dsn, data_dir) as url:
        for round_no in range(plan.rounds):
            for position, i in enumerate(round_order(len(plan.sets), round_no, plan.order)):
                label, name = plan.labels[i], plan.sets[i]
                measured.in_round, measured.starting = round_no + 1, label
                console.rule(f"[bold]{label}[/] (round {round_no + 1}/{plan.rounds}, run {position + 1} of "
                             f"{len(plan.sets)})")
                outcome = execute(RunOptions(
                    scenarios_path=plan.scenario_file, scenarios=plan.scenarios, index_set=name,
                    dataset_overrides=plan.overrides, quick=plan.quick, duration_factor=plan.duration_factor,
                    out=plan.out_folder / "runs", dsn=url, notifications=False, allow_remote=plan.allow_remote,
                    anchor=anchor, own_database=dsn is None, target=plan.target, target_url=plan.target_url,
                    cleanup=plan.cleanup,
                    workers=plan.workers, key_secret=plan.key_secret, checks=runs_checks(plan, round_no),
                    calibration_delay_ms=plan.delay_last_ms if i == len(plan.sets) - 1 else 0.0,
                    argv=plan.argv), narrate_to(console))
                measured.made.append((label, outcome.run_dir))
                if outcome.status == "completed":
                    measured.variants[label].append(outcome.run_dir)
                record_place(outcome.run_dir, round_no + 1, position)
                if outcome.status != "completed":
                    measured.status, measured.reason = outcome.status, f"{label}: {outcome.reason}"
                    return


def conclude(folder: Path, measured: Measured, noise: float, force: bool, store: CalibrationStore | None,
             console: Console) -> Comparison:
    """A compare's end, however it ended. Stopped early, it keeps what it measured: the complete rounds are
    compared, every run it made has its report (the stopped run too, as `bookbench run` writes one), and
    compare.json and compare.html say where it stopped."""
    if measured.status == "completed":
        return finish(folder, measured.variants, noise, force, store, console)
    report_runs([d for _, d in measured.not_compared()], console)
    stopped = measured.stopped()
    console.print(f"[yellow]compare {stopped.summary}[/]" + (f" ({measured.reason})" if measured.reason else ""))
    if measured.complete_rounds() == 0:
        return publish(folder, comparison.nothing_compared(measured.index_sets, noise), {}, console, stopped)
    return finish(folder, measured.compared(), noise, force, store, console, stopped=stopped)


def report_runs(run_dirs: list[Path], console: Console) -> None:
    """report.html in each of these run folders that has a manifest. One run's unreadable files cost its own
    report only (logged in its folder), never the comparison of the others."""
    for d in run_dirs:
        if not manifest_file.path_in(d).exists():
            continue
        try:
            analyse_and_render(d)
        except Exception as exc:  # any failure of one run's analysis: named here, its traceback in its own log
            log = RunFolder(d).log
            log_exception(log)
            console.print(f"[red]report not written for {d}:[/] {type(exc).__name__}: {exc} (traceback in {log})")


def calibrate_from(folder: Path, variants: dict[str, list[Path]], noise: float, store_path: Path,
                   previous: CalibrationStore | None, console: Console) -> Calibration:
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
