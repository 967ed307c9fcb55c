"""The machine a run measured on, from its manifest: how much other processes used the cores while it ran, and
which runs of a comparison stood out. Pure: the sampler that records it is bookbench.pipeline.interference."""

from __future__ import annotations

import statistics
from typing import Any

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


def interference_summary(manifest: Manifest) -> dict[str, Any]:
    """One run's interference over its scenarios, weighted by samples: outsiders' mean cores and share, steal,
    load average and memory pressure at worst; `measured` False for runs from before the sampler."""
    entries = [e.interference for e in manifest.scenarios.values() if e.interference]
    n = sum(int(e["samples"]) for e in entries)
    if not n:
        return {"measured": False}

    def weighted(key: str) -> float:
        return round(sum(float(e[key]) * int(e["samples"]) for e in entries) / n, 4)

    mem = [e["mem_pressure_avg10_max"] for e in entries if e.get("mem_pressure_avg10_max") is not None]
    return {"measured": True, "samples": n, "cpus": entries[0]["cpus"],
            "outside_cores": weighted("outside_cores"), "outside_cpu_share": weighted("outside_cpu_share"),
            "outside_cpu_s": round(sum(float(e["outside_cpu_s"]) for e in entries), 3),
            "steal_share": weighted("steal_share"), "load_avg_mean": weighted("load_avg_mean"),
            "load_avg_max": max(float(e["load_avg_max"]) for e in entries),
            "mem_pressure_avg10_max": max(mem) if mem else None,
            "available_mb_min": min(int(e["available_mb_min"]) for e in entries)}
