"""A scenario's stages as a pure function of elapsed time, the body of Locust's LoadTestShape.tick()."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

from bookbench.config.scenarios import Stage


def users_at(stages: Sequence[Stage], elapsed_s: float, processes: int = 1) -> tuple[int, float] | None:
    """(target users, spawn rate) at `elapsed_s`, or None when the last stage is over (Locust then stops).
    Open-model stages run one arrival scheduler per Locust process (`processes` users, all at once)."""
    if elapsed_s < 0:
        raise ValueError("elapsed time cannot be negative")
    end = 0.0
    for stage in stages:
        end += stage.duration_s
        if elapsed_s < end:
            if stage.users is None:
                return processes, float(processes)
            # no spawn rate: start everyone at once (Locust needs a positive rate; users is the fastest)
            rate = stage.spawn_rate if stage.spawn_rate is not None else float(max(stage.users, 1))
            return stage.users, rate
    return None


def arrival_rate_at(stages: Sequence[Stage], elapsed_s: float) -> float:
    """The open model's offered rate (requests/s, all processes together) at `elapsed_s`; 0 between arrival
    stages and after the last (nothing is offered while the last requests finish)."""
    end = 0.0
    for stage in stages:
        end += stage.duration_s
        if elapsed_s < end:
            return stage.arrival_rate or 0.0
    return 0.0


def arrival_times(stages: Sequence[Stage], arrivals: str, rng: random.Random, share: float = 1.0
                  ) -> Iterator[float]:
    """Intended send times (seconds from the start) of an open-model scenario, stage after stage: Poisson
    (exponential gaps, mean 1/rate) or uniform (every 1/rate). `share`: this process's part of the rate (1/N
    for N Locust processes)."""
    start = 0.0
    for stage in stages:
        rate = (stage.arrival_rate or 0.0) * share
        end = start + stage.duration_s
        if rate > 0:
            t = start
            while True:
                t += rng.expovariate(rate) if arrivals == "poisson" else 1.0 / rate
                if t >= end:
                    break
                yield t
        start = end


def batch_edges(start_s: float, end_s: float, batches: int) -> list[tuple[float, float]]:
    """Split [start_s, end_s) into `batches` equal windows (the sustained scenario's batches)."""
    width = (end_s - start_s) / batches
    return [(start_s + i * width, start_s + (i + 1) * width) for i in range(batches)]
