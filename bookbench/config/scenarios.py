"""scenarios.yaml as typed, validated models; errors name the key path and what is allowed."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bookbench.config.notifications import Faults, NotificationSpec
from bookbench.config.yamlfile import read_mapping
from bookbench.errors import UsageError

TASKS = ("checkAvailability", "lookupUpcomingAppointment", "bookClinicAppointment", "cancelAppointment")


MIN_SCALED_WARMUP_S = 2.0
DEFAULT_MAX_STALL_S = 5.0


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Stage(Strict):
    """Closed model: `users` callers firing back to back (their think time apart); open model: `arrival_rate`
    requests per second offered whatever the service does, each at its intended time."""

    duration_s: float = Field(gt=0, le=86_400)
    users: int | None = Field(default=None, ge=1, le=10_000)
    # users started per second; default: all at once
    spawn_rate: float | None = Field(default=None, gt=0)
    arrival_rate: float | None = Field(default=None, gt=0, le=100_000)

    @model_validator(mode="after")
    def _one_model(self) -> Stage:
        if (self.users is None) == (self.arrival_rate is None):
            raise ValueError("a stage sets either users (closed model) or arrival_rate (open model), not both")
        if self.arrival_rate is not None and self.spawn_rate is not None:
            raise ValueError("spawn_rate belongs to users stages; an arrival_rate stage offers its rate at once")
        return self


class ThinkTime(Strict):
    min: float = Field(default=0, ge=0, le=60)
    max: float = Field(default=0, ge=0, le=60)

    @model_validator(mode="after")
    def _ordered(self) -> ThinkTime:
        if self.max < self.min:
            raise ValueError("max must be >= min")
        return self


class Scenario(Strict):
    description: str = ""
    warmup_s: float = Field(default=0, ge=0)
    batches: int | None = Field(default=None, ge=1, le=1000)
    stages: list[Stage] = Field(min_length=1)
    # provider faults during this scenario (the fake providers apply them); default: notifications.providers
    faults: Faults | None = None
    # run when no --scenarios is given; false for scenarios you ask for by name (provider_outage)
    default: bool = True
    # open model only: how arrivals are spaced, and how many requests may be in flight at once (an arrival that
    # finds them all busy is dropped and counted)
    arrivals: Literal["poisson", "uniform"] = "poisson"
    max_in_flight: int = Field(default=200, ge=1, le=100_000)
    # how often the soak probe (service RSS, connections, table growth, vacuum, outbox backlog: db/<name>_soak.jsonl)
    # reads while this scenario runs; not scaled by --quick (a probe is a reading, not load), and not part of the
    # digest (it does not shape the load: runs that differ only here still compare)
    probe_every_s: float = Field(default=10.0, ge=0.2, le=3600)
    # the pause of this scenario's callers between two calls (closed model), in place of task_mix.think_time_s: a
    # soak paced like real callers beside bursts fired back to back; unset, the file's task_mix says
    think_time_s: ThinkTime | None = None

    def think(self, mix: TaskMix) -> ThinkTime:
        """The callers' pause in this scenario: its own, else the task mix's."""
        return self.think_time_s if self.think_time_s is not None else mix.think_time_s

    @property
    def open_model(self) -> bool:
        return self.stages[0].arrival_rate is not None

    @model_validator(mode="after")
    def _one_model_per_scenario(self) -> Scenario:
        if len({s.arrival_rate is None for s in self.stages}) > 1:
            raise ValueError("stages mix users and arrival_rate: a scenario is either closed or open model")
        return self

    @property
    def duration_s(self) -> float:
        return sum(s.duration_s for s in self.stages)

    @model_validator(mode="after")
    def _warmup_inside(self) -> Scenario:
        if self.warmup_s >= self.duration_s:
            raise ValueError(f"warmup_s ({self.warmup_s:g}) must be shorter than the stages ({self.duration_s:g} s)")
        return self

    def scaled(self, factor: float) -> Scenario:
        # the warm-up shrinks with the stages but not below MIN_SCALED_WARMUP_S: the first second of a fresh
        # Locust process and a fresh set of users is not steady state however short the run. Spawn rates grow by
        # 1/factor so a ramp keeps its shape: ramp_up still climbs over its whole first stage, not to 1 user and
        # then a jump to 5.
        return self.model_copy(update={
            "warmup_s": min(max(self.warmup_s * factor, min(self.warmup_s, MIN_SCALED_WARMUP_S)),
                            self.duration_s * factor / 3),
            "stages": [s.model_copy(update={
                "duration_s": s.duration_s * factor,
                "spawn_rate": None if s.spawn_rate is None else s.spawn_rate / factor}) for s in self.stages],
            # an outage 10 s into a 60 s scenario is 2 s into its quick version: windows scale with the stages
            "faults": None if self.faults is None else self.faults.scaled(factor),
        })


class TaskMix(Strict):
    protocol: Literal["rest", "vapi"] = "rest"
    weights: dict[Literal["checkAvailability", "lookupUpcomingAppointment", "bookClinicAppointment",
                          "cancelAppointment"], int] = Field(min_length=1)
    think_time_s: ThinkTime = ThinkTime()

    @model_validator(mode="after")
    def _some_weight(self) -> TaskMix:
        if any(w < 0 for w in self.weights.values()) or sum(self.weights.values()) == 0:
            raise ValueError("weights must be >= 0 and at least one > 0")
        return self


class Limits(Strict):
    p50_ms: float | None = Field(default=None, gt=0)
    p95_ms: float | None = Field(default=None, gt=0)
    p99_ms: float | None = Field(default=None, gt=0)
    error_rate: float | None = Field(default=None, ge=0, le=1)
    throughput_rps: float | None = Field(default=None, ge=0)
    # Path B: SMS confirmation delay (booking acknowledged -> provider received), and notifications undelivered
    # after the drain timeout
    sms_p95_s: float | None = Field(default=None, gt=0)
    notifications_lost: int | None = Field(default=None, ge=0)
    # the longest time without a completed request inside the load window (after the warm-up, before the planned
    # end); DEFAULT_MAX_STALL_S when set nowhere (a service that stops answering for seconds and then recovers
    # must not pass on the percentiles alone); null turns it off, globally or for one scenario
    max_stall_s: float | None = Field(default=None, gt=0)


class Thresholds(Strict):
    global_: Limits = Field(default=Limits(), alias="global")
    per_scenario: dict[str, Limits] = Field(default_factory=dict)
    # latency drift (analysis/drift.py): the P95's slope per hour as a share of its mean. Set, a scenario whose
    # whole 95 % interval lies above it fails (NO-GO); unset, drift beyond DEFAULT_DRIFT_PER_HOUR is a finding only
    p95_drift_per_hour: float | None = Field(default=None, gt=0, le=100)

    def stall_default(self, scenario: str, definition: dict[str, Any], think_max_s: float) -> float | None:
        """The stall limit of a scenario whose limit neither `global` nor its `per_scenario` entry names (a null
        there turns it off: then None): DEFAULT_MAX_STALL_S beyond the quiet a healthy run has anyway, the longest
        think time of a closed model's callers, or ten arrival intervals of a slow open model (a 1/s Poisson stream
        leaves 5 s without an arrival in 0.7 % of its gaps, 10 s in 0.005 %)."""
        override = self.per_scenario.get(scenario)
        named = "max_stall_s" in self.global_.model_fields_set or (
            override is not None and "max_stall_s" in override.model_fields_set)
        if named:
            return None
        rates = [float(st["arrival_rate"]) for st in definition.get("stages", []) if st.get("arrival_rate")]
        if rates:
            return max(DEFAULT_MAX_STALL_S, 10.0 / min(rates))
        return DEFAULT_MAX_STALL_S + think_max_s


class ReviewTargets(Limits):
    availability: float | None = Field(default=None, ge=0, le=1)


class AlertRules(Strict):
    p95_ms: float = Field(default=600, gt=0)
    error_rate: float = Field(default=0.01, ge=0, le=1)
    throughput_drop: float = Field(default=0.30, gt=0, lt=1)


class DatasetSpec(Strict):
    orgs: int = Field(default=50, ge=1)
    providers_per_org: int = Field(default=10, ge=1)
    contacts: int = Field(default=100_000, ge=1)
    appointments: int = Field(default=1_000_000, ge=0)
    seed: int = 42


class ScenarioFile(Strict):
    version: Literal[1]
    dataset: DatasetSpec = DatasetSpec()
    index_set: str = "none"
    quick_factor: float = Field(default=0.2, gt=0, le=1)
    # comparisons call a change real only when its whole confidence interval lies beyond this relative change
    noise_threshold: float = Field(default=0.05, gt=0, lt=1)
    task_mix: TaskMix
    scenarios: dict[str, Scenario] = Field(min_length=1)
    thresholds: Thresholds = Thresholds()
    review_targets: ReviewTargets = ReviewTargets()
    alert_rules: AlertRules = AlertRules()
    notifications: NotificationSpec = NotificationSpec()

    @model_validator(mode="after")
    def _known_scenarios(self) -> ScenarioFile:
        unknown = set(self.thresholds.per_scenario) - set(self.scenarios)
        if unknown:
            raise ValueError(f"thresholds.per_scenario names unknown scenarios: {', '.join(sorted(unknown))}")
        return self

    def digest(self) -> str:
        """Hash of the definitions that shape the load; runs with different digests are not comparable."""
        # think_time_s only where a scenario sets it: a file that sets none keeps the digest it had before the key
        relevant = {"scenarios": {k: v.model_dump(exclude={"probe_every_s"} | (
                        {"think_time_s"} if v.think_time_s is None else set())) for k, v in self.scenarios.items()},
                    "task_mix": self.task_mix.model_dump()}
        return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


class ScenarioFileError(UsageError):
    """scenarios.yaml is unreadable or invalid; the message lists every problem with its key path."""


def _format(exc: ValidationError, path: Path) -> str:
    lines = [f"{path}: {exc.error_count()} problem(s)"]
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"  {where}: {err['msg']}")
    return "\n".join(lines)


# the default scenarios ship inside the package (the repository's top-level scenarios.yaml links to it)
SHIPPED_SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios.yaml"


def load_scenarios(path: Path) -> ScenarioFile:
    raw = read_mapping(path, ScenarioFileError)
    try:
        return ScenarioFile.model_validate(raw)
    except ValidationError as exc:
        raise ScenarioFileError(_format(exc, path)) from exc


# -- an ad hoc run: one closed-model scenario from the command line, no file of its own --------------------------

ADHOC = "adhoc"
ADHOC_WARMUP_S = 3.0  # as the shipped scenarios; a shorter run keeps its first third as warm-up
_DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str, option: str) -> float:
    """`30s`, `2m`, `1h` or plain seconds (`45`, `2.5`); a UsageError naming `option` otherwise."""
    value = text.strip().lower()
    unit = _DURATION_UNITS.get(value[-1:]) if value else None
    number = value[:-1] if unit is not None else value
    try:
        seconds = float(number) * (unit or 1.0)
    except ValueError:
        raise UsageError(f"{option} {text!r}: not a duration (e.g. 30s, 2m, 1h, or seconds)") from None
    if not 0 < seconds <= 86_400:  # Stage.duration_s's bounds; also refuses nan and inf
        raise UsageError(f"{option} {text!r}: must be more than 0 s and at most 24 h")
    return seconds


def parse_mix(text: str, option: str) -> dict[str, int]:
    """`checkAvailability` or `checkAvailability:3,bookClinicAppointment:1` -> weights (1 where none is given)."""
    weights: dict[str, int] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, weight = (p.strip() for p in item.partition(":"))
        if name not in TASKS:
            raise UsageError(f"{option}: unknown operation {name!r}; the operations are {', '.join(TASKS)}")
        if name in weights:
            raise UsageError(f"{option}: {name} is named twice")
        if not sep:
            weights[name] = 1
        elif weight.isdigit() and 1 <= int(weight) <= 1000:
            weights[name] = int(weight)
        else:
            raise UsageError(f"{option}: the weight of {name} must be a whole number from 1 to 1000, not "
                             f"{weight!r}")
    if not weights:
        raise UsageError(f"{option}: name at least one operation ({', '.join(TASKS)})")
    return weights


@dataclass(frozen=True)
class CommandLineLoad:
    """What `bookbench run --users/--duration/--spawn-rate/--scenario-mix` asks for (None: not given)."""

    users: int | None = None
    duration_s: float | None = None
    spawn_rate: float | None = None
    mix: dict[str, int] | None = None

    @property
    def adhoc(self) -> bool:
        """True when the run is the one ADHOC scenario instead of the file's."""
        return self.users is not None or self.duration_s is not None


def with_command_line(spec: ScenarioFile, load: CommandLineLoad) -> ScenarioFile:
    """The file as the command line changes it: `mix` replaces the task mix's weights; `users` or `duration_s`
    replace the scenarios by one closed-model scenario ADHOC (1 user, 30 s where not given). The dataset,
    thresholds (`global`; a `per_scenario` entry names a scenario the run no longer has), review targets,
    alerts and notifications stay the file's, so checks, judge and report work as for any run."""
    users, duration_s, spawn_rate, mix = load.users, load.duration_s, load.spawn_rate, load.mix
    if spawn_rate is not None and not load.adhoc:
        raise UsageError("--spawn-rate: belongs to an ad hoc run; give --users (and --duration) with it")
    if mix is None and not load.adhoc:
        return spec
    # rebuilt from what the file set (exclude_unset): a limit it left unset must stay unset (stall_default)
    raw = spec.model_dump(by_alias=True, exclude_unset=True)
    if mix is not None:
        raw["task_mix"] = {**raw["task_mix"], "weights": mix}
    if load.adhoc:
        duration = 30.0 if duration_s is None else duration_s
        weights = mix or spec.task_mix.weights
        stage: dict[str, Any] = {"duration_s": duration, "users": users or 1}
        if spawn_rate is not None:
            stage["spawn_rate"] = spawn_rate
        raw["scenarios"] = {ADHOC: {
            "description": f"Ad hoc: {users or 1} user(s) for {duration:g} s, "
                           f"{', '.join(f'{k} x{w}' for k, w in weights.items())}.",
            "warmup_s": min(ADHOC_WARMUP_S, duration / 3), "stages": [stage]}}
        raw.setdefault("thresholds", {})["per_scenario"] = {}
    try:
        return ScenarioFile.model_validate(raw)
    except ValidationError as exc:  # the CLI bounds its options, so this is a last guard naming the values
        raise ScenarioFileError(_format(exc, Path("the command line"))) from exc
