"""A scenario's stages as a pure function of elapsed time, the body of Locust's LoadTestShape.tick()."""

from __future__ import annotations

from collections.abc import Sequence

from bookbench.spec.scenarios import Stage


def users_at(stages: Sequence[Stage], elapsed_s: float) -> tuple[int, float] | None:
    """(target users, spawn rate) at `elapsed_s`, or None when the last stage is over (Locust then stops)."""
    if elapsed_s < 0:
        raise ValueError("elapsed time cannot be negative")
    end = 0.0
    for stage in stages:
        end += stage.duration_s
        if elapsed_s < end:
            # no spawn rate: start everyone at once (Locust needs a positive rate; users is the fastest)
            rate = stage.spawn_rate if stage.spawn_rate is not None else float(max(stage.users, 1))
            return stage.users, rate
    return None


def batch_edges(start_s: float, end_s: float, batches: int) -> list[tuple[float, float]]:
    """Split [start_s, end_s) into `batches` equal windows (the sustained scenario's batches)."""
    width = (end_s - start_s) / batches
    return [(start_s + i * width, start_s + (i + 1) * width) for i in range(batches)]
