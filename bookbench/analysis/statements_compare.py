"""Per statement, each index set against the baseline (issue 27): from every run's db/statements.json the mean
execution time per call, the shared blocks touched per call (hit in shared buffers, read from outside them) and the
calls per second of the measured window; from db/waits.json the wait shares per set side by side.

A statement is matched across runs by its label when it is one of the service's own (the conflict check, the
booking function, ...); any other statement only when it is among the few costliest of some run, matched by its
normalized text (its queryid hashes the tables' OIDs, which differ between databases). The ratios go through the
comparison's own interval (analysis.comparison._interval, given here as `cell`): per round a figure, the paired
log ratio over rounds, Student's t. One round per side gives the ratio alone: nothing has measured how much a
statement's figures wander from run to run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bookbench.analysis import inference
from bookbench.analysis.run_order import Figures
from bookbench.artifacts.comparison import (
    Cell,
    Interval,
    NotCompared,
    OneRound,
    ScenarioStatementsComparison,
    SetWaits,
    StatementCell,
    StatementRow,
    StatementSet,
)
from bookbench.artifacts.db_evidence import (
    WAIT_CATEGORIES,
    ScenarioStatements,
    ScenarioWaits,
    StatementsFile,
    WaitsFile,
    read_statements,
    read_waits,
)
from bookbench.artifacts.folder import RunFolder
from bookbench.errors import ArtifactError

# The statement figures compared, each with the latency metric whose direction it shares: compare_rounds and the
# verdict know "lower is better" (p50) and "higher is better" (throughput) only by those names.
STATEMENT_METRICS = {"mean_exec_ms": "p50", "blocks_per_call": "p50", "read_per_call": "p50",
                     "calls_per_s": "throughput"}
METRIC_WORDS = {"mean_exec_ms": "mean execution time per call", "blocks_per_call": "shared blocks per call",
                "read_per_call": "shared blocks read per call", "calls_per_s": "calls per second"}
# "other" statements shown: those among this many costliest (total execution time) of some run
OTHER_TOP = 3
# an own statement's label -> the EXPLAIN files of db/evidence.py that show its plan (explain/<name>.json); the
# booking function runs the conflict check, then the insert
EXPLAIN_NAMES = {"conflict check": ("conflict_check",), "availability": ("availability",),
                 "upcoming lookup": ("upcoming",), "booking function": ("conflict_check", "insert"),
                 "booking insert": ("insert",), "cancel": ("cancel",)}

# (figures, reference label, compared label, metric) -> the interval or why there is none
CellOf = Callable[[Figures, str, str, str], Cell]


@dataclass(frozen=True)
class _Totals:
    """One statement's (or several with one label) sums in one run's window."""

    label: str
    own: bool
    query: str
    calls: int
    total_exec_ms: float
    hit: int
    read: int

    def add(self, other: _Totals) -> _Totals:
        return _Totals(self.label, self.own, self.query, self.calls + other.calls,
                       self.total_exec_ms + other.total_exec_ms, self.hit + other.hit, self.read + other.read)


@dataclass(frozen=True)
class _Run:
    """One run's statements of one scenario by key, and its window's length (None when it has none)."""

    name: str
    by_key: dict[str, _Totals]
    window_s: float | None


def _key(label: str, own: bool, query: str) -> str:
    return label if own else f"other: {query}"


def _run(folder: Path, recorded: ScenarioStatements) -> _Run:
    by_key: dict[str, _Totals] = {}
    for s in recorded.statements:
        t = _Totals(s.label, s.own, s.query, s.calls, s.total_exec_ms, s.shared_blks_hit, s.shared_blks_read)
        key = _key(s.label, s.own, s.query)
        by_key[key] = by_key[key].add(t) if key in by_key else t
    window = recorded.window
    length = window.end - window.start if window else None
    return _Run(folder.name, by_key, length if length and length > 0 else None)


def _which(i: int, n: int, name: str) -> str:
    return name if n == 1 else f"run {i + 1} of {n} ({name})"


def _read(runs: list[Path], scenario: str, label: str) -> list[_Run] | str:
    """A set's runs of one scenario, or the sentence saying why the set has no statements to compare."""
    out = []
    for i, d in enumerate(runs):
        which = _which(i, len(runs), d.name)
        try:
            data: StatementsFile | None = read_statements(RunFolder(d).statements)
        except ArtifactError as exc:
            return f"not recorded for {label}: {exc}"
        if data is None:
            return f"not recorded for {label}: {which} has no db/statements.json"
        recorded = data.scenarios.get(scenario)
        if recorded is None:
            return f"not recorded for {label}: {which} has no {scenario} in db/statements.json"
        if recorded.not_measured:
            where = "" if len(runs) == 1 else f" in {which}"
            return f"not measured for {label}{where}: {recorded.not_measured.removeprefix('not measured: ')}"
        out.append(_run(d, recorded))
    return out


def _per_call(t: _Totals, metric: str, window_s: float | None) -> float | None:
    if metric == "calls_per_s":
        return t.calls / window_s if window_s else None
    per = {"mean_exec_ms": t.total_exec_ms, "blocks_per_call": t.hit + t.read, "read_per_call": t.read,
           "hit_per_call": t.hit}[metric]
    return per / t.calls


def _figure(run: _Run, key: str, label: str, scenario: str, metric: str) -> inference.RunFigure | str:
    """One run's figure for the interval, or why it has none: a ratio needs a positive figure on both sides."""
    t = run.by_key.get(key)
    if t is None or t.calls == 0:
        return f"{run.name}: no calls of the {label} in {scenario}"
    value = _per_call(t, metric, run.window_s)
    if value is None:
        return f"{run.name}: no measured window in {scenario}, so no calls per second"
    if not (math.isfinite(value) and value > 0):
        return f"{run.name}: 0 {METRIC_WORDS[metric]}, no ratio"
    # one snapshot difference per window: no within-run spread to bootstrap, the rounds carry the variance
    return inference.RunFigure(value=value, within_var=0.0, requests=t.calls, blocks=0)


def _mean(values: list[float]) -> float:
    """Geometric mean over rounds as the latency figures use; arithmetic when a round has 0 (0 blocks read)."""
    if all(v > 0 for v in values):
        return float(np.exp(np.mean(np.log(values))))
    return float(np.mean(values))


def _one_round(figures: Figures, theirs: str, mine: str, proxy: str, metric: str) -> StatementCell:
    a, b = figures[theirs][0][proxy], figures[mine][0][proxy]
    bad = [v for v in (b, a) if isinstance(v, str)]
    if bad:
        return NotCompared(error=bad[0])
    assert isinstance(a, inference.RunFigure) and isinstance(b, inference.RunFigure)  # bad says so
    return OneRound(metric=metric, baseline=a.value, candidate=b.value, ratio=b.value / a.value,
                    note="one round: no interval (run-to-run noise not measured)")


def _vs_baseline(base: list[_Run], mine: list[_Run], key: str, label: str, scenario: str,
                 names: tuple[str, str], cell: CellOf) -> dict[str, StatementCell]:
    theirs, me = names
    out: dict[str, StatementCell] = {}
    for metric, proxy in STATEMENT_METRICS.items():
        figures: Figures = {theirs: [{proxy: _figure(r, key, label, scenario, metric)} for r in base],
                            me: [{proxy: _figure(r, key, label, scenario, metric)} for r in mine]}
        if min(len(base), len(mine)) < 2:
            out[metric] = _one_round(figures, theirs, me, proxy, metric)
            continue
        ci = cell(figures, theirs, me, proxy)
        out[metric] = ci.model_copy(update={"metric": metric}) if isinstance(ci, Interval) else ci
    return out


def _set(runs: list[_Run], key: str, explain: list[str]) -> StatementSet:
    present = [(i, r.by_key[key], r.window_s) for i, r in enumerate(runs) if key in r.by_key]
    absent = [_which(i, len(runs), r.name) for i, r in enumerate(runs) if key not in r.by_key]
    out = StatementSet(runs=len(present), calls=sum(t.calls for _, t, _ in present), explain=explain)
    if absent:
        out.missing = "no calls" if len(absent) == len(runs) else f"no calls in {', '.join(absent)}"
        return out
    for metric in ("mean_exec_ms", "hit_per_call", "read_per_call", "blocks_per_call", "calls_per_s"):
        values = [_per_call(t, metric, w) for _, t, w in present]
        if all(v is not None for v in values):
            setattr(out, metric, _mean([v for v in values if v is not None]))
    return out


def _explain(first_run: Path, label: str) -> list[str]:
    names = EXPLAIN_NAMES.get(label, (label.replace(" ", "_"),))
    paths = [RunFolder(first_run).explain_dir / f"{n}.json" for n in names]
    return [str(p) for p in paths if p.exists()]


def _keys(recorded: dict[str, list[_Run]], order_by: list[_Run]) -> list[str]:
    """Own statements (every label seen), then others among the OTHER_TOP costliest of some run; each group by
    its total time in `order_by` (the baseline's runs, or the first recorded set's), largest first."""
    keys: dict[str, bool] = {}
    for runs in recorded.values():
        for r in runs:
            ranked = sorted(r.by_key.items(), key=lambda kv: -kv[1].total_exec_ms)
            for i, (key, t) in enumerate(ranked):
                if t.own or i < OTHER_TOP:
                    keys[key] = t.own

    def cost(key: str) -> float:
        return sum(r.by_key[key].total_exec_ms for r in order_by if key in r.by_key)

    return sorted(keys, key=lambda k: (not keys[k], -cost(k), k))


def _waits(label: str, runs: list[Path], scenario: str) -> SetWaits:
    found: list[ScenarioWaits] = []
    for i, d in enumerate(runs):
        which = _which(i, len(runs), d.name)
        try:
            data: WaitsFile | None = read_waits(RunFolder(d).waits)
        except ArtifactError as exc:
            return SetWaits(runs=0, shares={}, observations=0, not_measured=f"not recorded for {label}: {exc}")
        entry = data.scenarios.get(scenario) if data else None
        if entry is None:
            where = "db/waits.json" if data is None else f"{scenario} in db/waits.json"
            return SetWaits(runs=0, shares={}, observations=0,
                            not_measured=f"not recorded for {label}: {which} has no {where}")
        found.append(entry)
    sampled = [w.waits for w in found if w.waits is not None and w.waits.observations > 0]
    served = [w.service for w in found if w.service is not None and w.service.requests]
    out = SetWaits(runs=len(sampled), shares={}, observations=sum(s.observations for s in sampled))
    if sampled:
        out.shares = {c: float(np.mean([s.shares.get(c, 0.0) for s in sampled])) for c in WAIT_CATEGORIES}
        out.busy_backends_mean = float(np.mean([s.busy_backends_mean for s in sampled]))
        out.hz = min(s.hz for s in sampled)
        events: dict[str, int] = {}
        for sample in sampled:
            for event, n in sample.events.items():
                events[event] = events.get(event, 0) + n
        out.events = {e: n / out.observations for e, n in sorted(events.items(), key=lambda kv: -kv[1])[:6]}
    else:
        reasons = [w.waits_not_measured for w in found if w.waits_not_measured]
        instants = sum(w.waits.instants for w in found if w.waits is not None)
        out.not_measured = reasons[0] if reasons else f"not measured: no busy backend in {instants:,} sampling instants"
    if served:
        out.pool_wait_ms_mean = float(np.mean([s.pool_wait_ms_mean for s in served]))
        out.db_ms_mean = float(np.mean([s.db_ms_mean for s in served]))
        out.handler_ms_mean = float(np.mean([s.handler_ms_mean for s in served]))
    else:
        reasons = [w.service_not_measured for w in found if w.service_not_measured]
        out.service_not_measured = reasons[0] if reasons else "not measured: the service reported no timing"
    return out


def compare(variants: dict[str, list[Path]], scenarios: list[str], cell: CellOf,
            prior: str) -> dict[str, ScenarioStatementsComparison] | None:
    """Per scenario, every statement of every set against the first set (the baseline). None when no run of any
    set has db/statements.json or db/waits.json (runs from before issue 27): compare.json then has no such key."""
    everything = [d for runs in variants.values() for d in runs]
    if not any(RunFolder(d).statements.exists() or RunFolder(d).waits.exists() for d in everything):
        return None
    baseline = next(iter(variants))
    out: dict[str, ScenarioStatementsComparison] = {}
    for scenario in scenarios:
        read = {label: _read(runs, scenario, label) for label, runs in variants.items()}
        recorded = {label: r for label, r in read.items() if not isinstance(r, str)}
        not_recorded = {label: r for label, r in read.items() if isinstance(r, str)}
        order_by = recorded.get(baseline) or next(iter(recorded.values()), [])
        rows = []
        for key in _keys(recorded, order_by):
            first = next(t for runs in recorded.values() for r in runs if (t := r.by_key.get(key)))
            row = StatementRow(key=key, label=first.label, own=first.own, query=first.query, sets={})
            for label, runs in recorded.items():
                mine = _set(runs, key, _explain(variants[label][0], first.label) if first.own else [])
                if label != baseline and baseline in recorded:
                    mine.vs_baseline = _vs_baseline(recorded[baseline], runs, key, first.label, scenario,
                                                    (baseline, label), cell)
                row.sets[label] = mine
            rows.append(row)
        out[scenario] = ScenarioStatementsComparison(
            not_recorded=not_recorded, statements=rows, prior=prior,
            waits={label: _waits(label, runs, scenario) for label, runs in variants.items()})
    return out
