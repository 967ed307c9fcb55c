"""The machine a run measured on, from its manifest: how much other processes used the cores while it ran, which
runs of a comparison stood out, and a comparison against its calibration's. Pure: the sampler that records it is
bookbench.pipeline.interference."""

from __future__ import annotations

import statistics

from bookbench.artifacts.comparison import CalibratedInterference, Interference, RunInterference
from bookbench.artifacts.manifest import Manifest

# a run is under "strongly more" interference than the others of its comparison at more than this factor of their
# median, and at least this many cores above it (a quiet machine's wander is not a finding)
STRONG_FACTOR = 2.0
STRONG_MIN_CORES = 0.15


def differs_strongly(values: list[float]) -> list[bool]:
    """Which runs (outsiders' mean cores, `outside_cores`) were under strongly more interference than the others:
    more than STRONG_FACTOR times the median of all of them AND more than STRONG_MIN_CORES cores above it. The
    second part keeps a quiet machine's wander (0.01 against 0.03 cores) from being flagged."""
    if len(values) < 2:
        return [False] * len(values)
    median = statistics.median(values)
    return [v > STRONG_FACTOR * median and v - median > STRONG_MIN_CORES for v in values]


def much_more(value: float, reference: float) -> bool:
    """`value` (outsiders' cores) is strongly above `reference`: the same rule as differs_strongly, against one
    reference (a calibration's) instead of the median of peers."""
    return value > STRONG_FACTOR * reference and value - reference > STRONG_MIN_CORES


def interference_summary(manifest: Manifest) -> RunInterference:
    """One run's interference over its scenarios, weighted by samples: outsiders' mean cores and share, steal,
    load average and memory pressure at worst; `measured` False for runs from before the sampler."""
    entries = [e.interference for e in manifest.scenarios.values() if e.interference]
    n = sum(int(e["samples"]) for e in entries)
    if not n:
        return RunInterference(measured=False)

    def weighted(key: str) -> float:
        return round(sum(float(e[key]) * int(e["samples"]) for e in entries) / n, 4)

    mem = [e["mem_pressure_avg10_max"] for e in entries if e.get("mem_pressure_avg10_max") is not None]
    return RunInterference(
        measured=True, samples=n, cpus=entries[0]["cpus"], outside_cores=weighted("outside_cores"),
        outside_cpu_share=weighted("outside_cpu_share"),
        outside_cpu_s=round(sum(float(e["outside_cpu_s"]) for e in entries), 3),
        steal_share=weighted("steal_share"), load_avg_mean=weighted("load_avg_mean"),
        load_avg_max=max(float(e["load_avg_max"]) for e in entries),
        mem_pressure_avg10_max=max(mem) if mem else None,
        available_mb_min=min(int(e["available_mb_min"]) for e in entries))


def interference(manifests: dict[str, list[Manifest]], calibrated: CalibratedInterference | None) -> Interference:
    """How busy the machine was during each run of a comparison (variant -> its runs' manifests in round order),
    the rounds whose runs stood out, and this comparison against the interference its calibration was measured
    under."""
    runs = {label: [interference_summary(m) for m in per] for label, per in manifests.items()}
    out = Interference(runs=runs, flagged_rounds=[], notes=[])
    placed = [(i, label, s.outside_cores) for label, per in runs.items() for i, s in enumerate(per)
              if s.measured and s.outside_cores is not None]
    if not placed:
        out.notes.append("interference was not measured (runs from before the sampler)")
        return out
    flags = differs_strongly([cores for _, _, cores in placed])
    median = statistics.median(cores for _, _, cores in placed)
    for (i, label, cores), flagged in zip(placed, flags, strict=True):
        if flagged and i + 1 not in out.flagged_rounds:
            out.flagged_rounds.append(i + 1)
            out.notes.append(f"round {i + 1}: the {label} run ran under strongly more interference than the "
                             f"others (other processes used {cores:.2f} cores against a median of {median:.2f}); "
                             "its figures measure the machine as much as the set")
    mean = statistics.fmean(cores for _, _, cores in placed)
    out.outside_cores = round(mean, 4)
    if calibrated is not None:
        cal = calibrated.outside_cores
        out.calibration = calibrated
        if much_more(mean, cal):
            cpus = float(calibrated.cpus or 1)
            free_now, free_then = max(cpus - mean, 0.1), max(cpus - cal, 0.1)
            out.notes.append(
                f"this comparison ran under much more interference ({mean:.2f} cores used by other processes) than "
                f"its calibration {calibrated.id} ({cal:.2f}): the run-to-run spread the verdicts assume was "
                f"measured with {free_then:.1f} free cores, these runs had {free_now:.1f}, so its verdicts are "
                f"weaker than their intervals say (about {free_then / free_now:.1f}x less CPU to spare)")
    return out
