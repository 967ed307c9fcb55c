"""This machine's run-to-run noise, measured by A/A rounds (`bookbench calibrate`): stored per scenario definition
and dataset, read back by compare as the prior of every interval (bookbench.analysis.inference.NoisePrior)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from bookbench.analysis.inference import NoisePrior, detectable_change
from bookbench.analysis.machine import interference_summary
from bookbench.analysis.stats import METRICS
from bookbench.artifacts import manifest as manifest_file
from bookbench.artifacts import summary as summary_file
from bookbench.artifacts.comparison import (
    CalibratedInterference,
    CalibratedScenario,
    Calibration,
    CalibrationStore,
    MetricNoise,
    read_calibration_file,
    write_calibration_file,
)
from bookbench.artifacts.summary import ScenarioSummary

SHOWN_ROUNDS = (1, 3, 5, 10)


def definition_digest(definition: dict[str, Any]) -> str:
    """Identity of a scenario as it ran (stages, users, durations after scaling, warm-up)."""
    return hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()[:16]


def from_pairs(pairs: dict[str, dict[str, list[tuple[float, float]]]], *, calibration_id: str, index_set: str,
               dataset_fingerprint: str, definitions: dict[str, dict[str, Any]], machine: dict[str, Any],
               noise: float) -> Calibration:
    """Run-to-run spread from A/A pairs: per scenario and metric, [(run A figure, run B figure) per round].

    Both runs of a pair ran the same configuration, so the true log ratio is 0 and the variance of one run's log
    is mean(d^2) / 2 with one degree of freedom per pair.
    """
    scenarios: dict[str, CalibratedScenario] = {}
    for name, per_metric in pairs.items():
        metrics: dict[str, MetricNoise] = {}
        for metric, values in per_metric.items():
            d = np.array([math.log(b / a) for a, b in values if a > 0 and b > 0])
            if d.size == 0:
                continue
            sd = float(math.sqrt(float(np.mean(d ** 2)) / 2))
            prior = NoisePrior(sd, int(d.size), f"calibration {calibration_id}", measured=True)
            metrics[metric] = MetricNoise(
                sd_log=sd, df=int(d.size), run_to_run_pct=100 * (math.exp(sd) - 1),
                pair_ratios=[float(x) for x in np.exp(d)],
                detectable_pct={str(r): 100 * detectable_change(prior, r, noise) for r in SHOWN_ROUNDS})
        scenarios[name] = CalibratedScenario(definition_digest=definition_digest(definitions[name]),
                                             definition=definitions[name], metrics=metrics)
    return Calibration(id=calibration_id, created=dt.datetime.now(dt.UTC).isoformat(), index_set=index_set,
                       dataset_fingerprint=dataset_fingerprint, machine=machine, rounds=max(
                           (len(v) for pm in pairs.values() for v in pm.values()), default=0), scenarios=scenarios)


def write(path: Path, calibration: Calibration) -> None:
    """Merge into the store at `path`: one entry per scenario definition and dataset, the newest wins."""
    store = read(path) if path.exists() else CalibrationStore(entries=[])
    keep = []
    new_keys = {(e.definition_digest, calibration.dataset_fingerprint) for e in calibration.scenarios.values()}
    for entry in store.entries:
        remaining = {n: s for n, s in entry.scenarios.items()
                     if (s.definition_digest, entry.dataset_fingerprint) not in new_keys}
        if remaining:
            keep.append(entry.model_copy(update={"scenarios": remaining}))
    write_calibration_file(path, store.model_copy(update={"entries": [*keep, calibration]}))


def read(path: Path) -> CalibrationStore:
    return read_calibration_file(path)


def prior(store: CalibrationStore | None, definition: dict[str, Any], dataset_fingerprint: str,
          metric: str) -> NoisePrior | None:
    """The newest measured spread for this exact scenario definition and dataset, if any."""
    if store is None or metric not in METRICS:
        return None
    digest = definition_digest(definition)
    for entry in reversed(store.entries):
        if entry.dataset_fingerprint != dataset_fingerprint:
            continue
        for scenario in entry.scenarios.values():
            m = scenario.metrics.get(metric) if scenario.definition_digest == digest else None
            if m is not None:
                return NoisePrior(m.sd_log, m.df, f"calibration {entry.id}", measured=True)
    return None


def figure(summary_scenario: ScenarioSummary, metric: str) -> float | None:
    """A scenario's figure for `metric` as its report states it."""
    if metric == "throughput":
        return float(summary_scenario.throughput_rps) if summary_scenario.requests else None
    value: float | None = getattr(summary_scenario.latency_ms, metric, None)
    return None if value is None else float(value)


def from_runs(a_runs: list[Path], b_runs: list[Path], *, calibration_id: str, noise: float) -> Calibration:
    """Calibration from A/A rounds: a_runs[i] and b_runs[i] ran the same set in round i."""
    first = manifest_file.read(a_runs[0])
    pairs: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for a, b in zip(a_runs, b_runs, strict=True):
        sa, sb = summary_file.read(a).scenarios, summary_file.read(b).scenarios
        for name in first.scenarios:
            for metric in METRICS:
                fa = figure(sa[name], metric) if name in sa else None
                fb = figure(sb[name], metric) if name in sb else None
                if fa and fb:
                    pairs.setdefault(name, {}).setdefault(metric, []).append((fa, fb))
    out = from_pairs(pairs, calibration_id=calibration_id, index_set=first.index_set.name,
                     dataset_fingerprint=first.dataset.fingerprint,
                     definitions={n: e.definition for n, e in first.scenarios.items()},
                     machine=first.machine, noise=noise)
    # the interference the spread was measured under: a later compare under much more is told so
    seen = [s for s in (interference_summary(manifest_file.read(d)) for d in [*a_runs, *b_runs])
            if s.measured and s.outside_cores is not None and s.cpus is not None]
    if seen:
        out.interference = CalibratedInterference(
            outside_cores=round(statistics.fmean(s.outside_cores or 0.0 for s in seen), 4), cpus=seen[0].cpus or 0,
            runs=len(seen))
    return out


def interference_of(store: CalibrationStore | None, dataset_fingerprint: str) -> CalibratedInterference | None:
    """The interference the newest calibration of this dataset was measured under, if it recorded one."""
    for entry in reversed(store.entries if store else []):
        if entry.dataset_fingerprint == dataset_fingerprint and entry.interference:
            return entry.interference.model_copy(update={"id": entry.id})
    return None
