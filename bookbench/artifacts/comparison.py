"""compare.json (a comparison folder) and the calibration store: the files `compare` and `calibrate` leave, as the
models the compare stage builds and its page reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer

from bookbench.artifacts.files import check_version, read_json, read_model, write_model

# 2: rounds, paired run-to-run intervals, labels; 3: run order and position effect; 4: run_status, stopped
COMPARE_FORMAT_VERSION = 4
CALIBRATION_FORMAT_VERSION = 1

# a variant's own figures in a row of compare.json, as named by analysis.stats.METRICS
FIGURES = ("p50", "p95", "p99", "throughput")


class _Model(BaseModel):
    """Unknown keys are refused. A field named in `sparse` is written only when it was given (built or read), never
    as null: those keys have always been absent from the files when they do not apply."""

    model_config = ConfigDict(extra="forbid")
    sparse: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _drop_unset(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        for name in self.sparse - self.model_fields_set:
            data.pop(name, None)
        return data


class Adjusted(_Model):
    """An interval recomputed with the measured run-order effect taken out of every later run of a round."""

    ratio: float
    low: float
    high: float
    verdict: str


class Interval(_Model):
    """Candidate/baseline ratio of one metric over rounds of runs with its t interval and verdict
    (analysis.inference.compare_rounds); with a measured position effect also the interval without it and, when
    the verdict rested on that effect, why it was downgraded to within noise."""

    sparse: ClassVar[frozenset[str]] = frozenset({"position_adjusted", "downgraded"})
    metric: str
    baseline: float  # geometric mean of the baseline runs' figures
    candidate: float
    ratio: float  # exp(mean paired log ratio) when paired, else ratio of the geometric means
    low: float
    high: float
    verdict: str
    noise_used: float  # the threshold the verdict used: max(configured, measured noise of this estimate)
    rounds: int  # runs per side when paired, else min of the two
    paired: bool
    df: int  # degrees of freedom of the t interval
    sd_pair: float  # sd of one pair's log ratio the interval used
    variance_source: str  # which term set the variance: "rounds + <prior source>" or "within-run bootstrap"
    run_ratios: list[float]  # per round candidate/baseline (paired), for the page
    n_baseline: int
    n_candidate: int
    blocks_baseline: int
    blocks_candidate: int
    position_adjusted: Adjusted | None = None
    downgraded: str | None = None


class NotCompared(_Model):
    """A figure that could not be compared, and why: "<run folder>: too few samples to compare (...)"."""

    error: str


Cell = Interval | NotCompared


class Row(_Model):
    """One variant in one scenario: its own figures (each the geometric mean over its runs of what their reports
    state; absent when a run has none) and its intervals against the baseline and every earlier candidate."""

    sparse: ClassVar[frozenset[str]] = frozenset({"p95_from_intended", "dropped", *FIGURES})
    requests: int  # after the warm-up, summed over runs
    runs: int
    vs_baseline: dict[str, Cell]  # metric -> interval; empty for the baseline itself
    vs: dict[str, dict[str, Cell]]  # earlier candidate -> metric -> interval (e.g. recommended against seed)
    # open-model scenarios only: P95 from the intended send time (geometric mean, None when no run had one) and the
    # arrivals dropped, summed over runs
    p95_from_intended: float | None = None
    dropped: int | None = None
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    throughput: float | None = None

    def figure(self, metric: str) -> float | None:
        """The variant's own figure for one of FIGURES, None when a run had none."""
        if metric not in FIGURES:
            raise ValueError(f"unknown metric {metric!r}; expected one of {FIGURES}")
        value: float | None = getattr(self, metric)
        return value

    def has_figures(self) -> bool:
        return any(self.figure(m) is not None for m in FIGURES)

    def open_model(self) -> bool:
        return self.dropped is not None


Design = Literal["balanced", "fixed", "unbalanced", "single round", "unpaired"]


class Order(_Model):
    """The rounds' run order: its design, each variant's position in rounds 1, 2, ... and notes in words."""

    design: Design
    positions: dict[str, list[int]]
    notes: list[str]


class PositionEffect(_Model):
    """How much a run's figure moves when it runs later in its round than first, whichever variant it is:
    exp(beta) of the "later" term, with a t interval. Not separable when every variant kept one position."""

    metric: str
    separable: bool
    ratio: float  # later / first; 1.0 when not separable
    low: float
    high: float
    detectable: bool  # the interval excludes 1
    df: int
    rounds: int  # rounds with at least two runs
    variance_source: str


class RunInterference(_Model):
    """One run's interference over its scenarios (analysis.machine.interference_summary); only `measured` for a
    run from before the sampler."""

    sparse: ClassVar[frozenset[str]] = frozenset({
        "samples", "cpus", "outside_cores", "outside_cpu_share", "outside_cpu_s", "steal_share", "load_avg_mean",
        "load_avg_max", "mem_pressure_avg10_max", "available_mb_min"})
    measured: bool
    samples: int | None = None
    cpus: int | None = None
    outside_cores: float | None = None  # other processes' mean cores while the run ran
    outside_cpu_share: float | None = None
    outside_cpu_s: float | None = None
    steal_share: float | None = None
    load_avg_mean: float | None = None
    load_avg_max: float | None = None
    mem_pressure_avg10_max: float | None = None
    available_mb_min: int | None = None


class CalibratedInterference(_Model):
    """The interference a calibration's spread was measured under; `id` names that calibration in compare.json."""

    sparse: ClassVar[frozenset[str]] = frozenset({"id"})
    outside_cores: float
    cpus: int
    runs: int
    id: str | None = None


class Interference(_Model):
    """How busy the machine was during each run, the rounds whose runs stood out, and this comparison against the
    interference its calibration was measured under (notes in words)."""

    sparse: ClassVar[frozenset[str]] = frozenset({"outside_cores", "calibration"})
    runs: dict[str, list[RunInterference]]
    flagged_rounds: list[int]
    notes: list[str]
    outside_cores: float | None = None  # mean over the measured runs; absent when none was measured
    calibration: CalibratedInterference | None = None


class StrayRun(_Model):
    """A run a stopped compare made outside its complete rounds: not compared, but on the page with its report."""

    label: str
    run: str
    status: str


class Stopped(_Model):
    """How a compare that ended before its last round stopped; `summary` is the sentence the page and the
    terminal say ("interrupted in round 2: rounds 1-1 compared")."""

    status: str
    round: int | None
    rounds_planned: int
    rounds_compared: int
    reason: str | None
    summary: str
    not_compared: list[StrayRun]


class MetricNoise(_Model):
    """One scenario metric's run-to-run spread from A/A pairs: sd of one run's log figure and what it lets a
    compare of 1, 3, 5 or 10 rounds detect."""

    sd_log: float
    df: int
    run_to_run_pct: float
    pair_ratios: list[float]
    detectable_pct: dict[str, float]  # rounds (as text) -> smallest change called about half the time, in %


class CalibratedScenario(_Model):
    definition_digest: str  # analysis.calibration.definition_digest of `definition`
    definition: dict[str, Any]  # the scenario as it ran (manifest ScenarioEntry.definition)
    metrics: dict[str, MetricNoise]


class Calibration(_Model):
    """One calibration (a calibrate folder's calibration.json, an entry of the store, compare.json's
    `calibration`): the spread its A/A rounds measured per scenario definition, on one dataset."""

    sparse: ClassVar[frozenset[str]] = frozenset({"interference"})
    format_version: int = CALIBRATION_FORMAT_VERSION
    id: str
    created: str
    index_set: str
    dataset_fingerprint: str
    machine: dict[str, Any]  # the manifest's machine of its first run
    rounds: int
    scenarios: dict[str, CalibratedScenario]
    interference: CalibratedInterference | None = None  # absent in calibrations from before the sampler


class CalibrationStore(_Model):
    """Every calibration kept, oldest first: one entry per scenario definition and dataset, the newest wins."""

    format_version: int = CALIBRATION_FORMAT_VERSION
    entries: list[Calibration]


class OneRound(_Model):
    """A statement's figure compared over one round: the ratio alone. One run per side measures nothing of the
    run-to-run noise of a statement's figures, so no interval is claimed (the latency metrics lean on a noise prior
    instead; for statements none has been measured)."""

    metric: str
    baseline: float
    candidate: float
    ratio: float
    note: str  # "one round: no interval"


StatementCell = Interval | OneRound | NotCompared


class StatementSet(_Model):
    """One set's figures for one statement in one scenario (analysis.statements_compare): each the geometric mean
    over the set's rounds (the arithmetic mean when a round has 0), None when a round has no such figure; and the
    set against the baseline per metric (STATEMENT_METRICS there)."""

    runs: int  # rounds whose db/statements.json has the statement
    calls: int  # summed over those rounds
    mean_exec_ms: float | None = None  # mean execution time per call
    hit_per_call: float | None = None  # shared blocks found in shared buffers, per call
    read_per_call: float | None = None  # shared blocks read from outside shared buffers (OS cache or disk), per call
    blocks_per_call: float | None = None  # hit + read: every shared block the statement touched, per call
    calls_per_s: float | None = None  # calls / the measured window's length
    missing: str | None = None  # why this set has no figures for the statement ("no calls in run 2 of 3")
    vs_baseline: dict[str, StatementCell] = {}
    explain: list[str] = []  # the set's EXPLAIN files for this statement (explain/<name>.json), its first run's


class StatementRow(_Model):
    """One statement matched across runs: an own statement by its label, any other by its normalized text."""

    key: str
    label: str
    own: bool
    query: str  # the normalized text, as the first run that has it recorded it
    sets: dict[str, StatementSet]  # label of the set -> its figures; every set of the compare


class SetWaits(_Model):
    """A set's sampled wait shares in one scenario (db/waits.json), means over its rounds that sampled, and the
    service's own per-request pool wait and connection-held time when it reported them."""

    runs: int  # rounds with samples
    shares: dict[str, float]  # WAIT_CATEGORIES -> mean share of busy-backend observations
    # the raw wait events behind the categories: "type:event" -> share of all the rounds' observations (top 6)
    events: dict[str, float] = {}
    observations: int  # summed over rounds
    busy_backends_mean: float | None = None
    hz: float | None = None  # the lowest sampling rate achieved among the rounds
    pool_wait_ms_mean: float | None = None
    db_ms_mean: float | None = None
    handler_ms_mean: float | None = None
    not_measured: str | None = None  # why there are no shares ("not recorded for none: ...", a sampler's reason)
    service_not_measured: str | None = None


class ScenarioStatementsComparison(_Model):
    """compare.json `statements[scenario]`: per statement each set against the baseline, and the wait shares."""

    not_recorded: dict[str, str]  # set -> "not recorded for <set>: ...": nothing is compared for it
    statements: list[StatementRow]  # own statements first (by the baseline's total time), then others
    waits: dict[str, SetWaits]
    prior: str  # the run-to-run noise prior of the statement intervals


class Comparison(_Model):
    """compare.json: `scenarios[name][label]` is each variant's Row."""

    # absent from compare.json written before issue 27 (per-statement evidence), and when no run recorded any
    sparse: ClassVar[frozenset[str]] = frozenset({"statements"})

    format_version: int = COMPARE_FORMAT_VERSION
    created: str
    baseline: str
    sets: list[str]  # variant labels in order, the baseline first
    index_sets: dict[str, str]  # label -> index set
    repeat: int
    paired: bool
    noise_threshold: float
    forced_despite: list[str]
    runs: dict[str, list[str]]
    # each compared run's status in words beside `runs` ("completed", "interrupted (stopped by SIGTERM)"); a run
    # that did not complete is compared only with --force and never makes its set the best
    run_status: dict[str, list[str]]
    scenarios: dict[str, dict[str, Row]]
    priors: dict[str, dict[str, str]]  # scenario -> metric -> the noise prior's source
    findings: dict[str, Any]  # label -> analysis.findings.index_findings of its first run
    best: str | None
    headline: str
    order: Order
    position_effect: dict[str, dict[str, PositionEffect]]  # scenario -> metric
    calibration: Calibration | None = None  # calibrate only: the spread its A/A rounds measured
    interference: Interference | None = None
    stopped: Stopped | None = None  # a compare that stopped before its last round (interrupted or a run failed)
    # scenario -> per statement each set against the baseline and the wait shares side by side (issue 27)
    statements: dict[str, ScenarioStatementsComparison] | None = None


def write_comparison(folder: Path, result: Comparison) -> Path:
    path = folder / "compare.json"
    write_model(path, result)
    return path


def write_calibration_file(path: Path, data: Calibration | CalibrationStore) -> None:
    """One calibration (a calibrate folder's calibration.json) or the whole store."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_model(path, data)


def read_calibration_file(path: Path) -> CalibrationStore:
    """The store; a single calibration.json is read as a store of one entry."""
    if "entries" in check_version(path, read_json(path), CALIBRATION_FORMAT_VERSION):
        return read_model(path, CalibrationStore, CALIBRATION_FORMAT_VERSION)
    return CalibrationStore(entries=[read_model(path, Calibration, CALIBRATION_FORMAT_VERSION)])
