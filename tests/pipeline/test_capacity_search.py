"""The capacity search on a synthetic service whose breaking point is known."""

from __future__ import annotations

import pytest

from bookbench.pipeline.capacity import search


@pytest.mark.parametrize(("knee", "expected"), [
    (1000.0, (1000.0, 1200.0)),  # 25, 50, ..., 800 hold; 1600 breaks; midpoints 1200 (breaks), 1000 (holds)
    (10.0, (9.4, 10.9)),         # 25 breaks: halve to 12.5 (breaks), 6.25 (holds); midpoints 9.4 (holds), 10.9 (breaks)
    (0.5, (None, 1.5625)),       # breaks down to the floor of 1/s (25, 12.5, ..., 1.5625; 0.78 is below it)
    (1e9, (6400.0, None)),       # never breaks within --max
])
def test_doubling_then_bisection_brackets_the_knee(knee: float, expected: tuple[float | None, float | None]) -> None:
    tried: list[float] = []

    def holds(rate: float) -> bool:
        tried.append(rate)
        return rate <= knee

    assert search(25, 6400, 2, holds) == expected
    doubling = [25.0 * 2 ** i for i in range(9) if 25.0 * 2 ** i <= 6400]
    if knee >= 25:
        steps = min(len(doubling), sum(r <= knee for r in doubling) + 1)
        assert tried[:steps] == doubling[:steps]  # the rate doubles until a step breaks, then bisects


def test_bisection_narrows_the_bracket_each_step() -> None:
    good, bad = search(100, 10_000, 5, lambda rate: rate <= 1234)
    assert good is not None and bad is not None
    assert good <= 1234 < bad and bad - good <= 3200 / 2 ** 5 + 0.1


def test_the_capacity_headline_says_what_the_machine_was_doing() -> None:
    """A capacity found under other work, or with the generator as the bottleneck, says so (issue 23 item 4)."""
    from bookbench.pipeline.capacity import headline

    def result(cores: float, saturated_at: float | None) -> dict[str, object]:
        steps = [{"rate": r, "ok": r < 400, "why": "", "outside_cores": cores,
                  "generator_saturated": r == saturated_at} for r in (100.0, 200.0, 400.0)]
        return {"limits": {"p95_ms": 500.0, "error_rate": 0.001},
                "sets": {"recommended": {"steps": steps, "max_rps": 200.0, "breaks_at": 400.0}}}

    quiet = headline(result(0.05, None))
    assert "Other processes" not in quiet and "bottleneck" not in quiet
    busy = headline(result(1.1, 400.0))
    assert "Other processes used 1.10 cores" in busy and "not comparable with a quiet machine" in busy
    assert "Other processes" not in headline(result(0.3, None))  # a little background work is not "busy"
    assert "At 400/s the load generator was the bottleneck" in busy
