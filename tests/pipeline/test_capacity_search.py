"""The capacity search on a synthetic service whose breaking point is known."""

from __future__ import annotations

import pytest

from bookbench.pipeline.capacity import search


@pytest.mark.parametrize(("knee", "expected", "ladder", "midpoints"), [
    # 25, 50, ..., 800 hold; 1600 breaks; midpoints 1200 (breaks), 1000 (holds)
    (1000.0, (1000.0, 1200.0), [25.0 * 2 ** i for i in range(7)], [1200.0, 1000.0]),
    # 25 breaks: halve to 12.5 (breaks), 6.25 (holds); midpoints 9.4 (holds), 10.9 (breaks)
    (10.0, (9.4, 10.9), [25.0, 12.5, 6.25], [9.4, 10.9]),
    # breaks down to the floor of 1/s (25, 12.5, ..., 1.5625; 0.78 is below it): nothing held, nothing to bisect
    (0.5, (None, 1.5625), [25.0 / 2 ** i for i in range(5)], []),
    # never breaks within --max: nothing broke, nothing to bisect
    (1e9, (6400.0, None), [25.0 * 2 ** i for i in range(9)], []),
])
def test_search_doubles_or_halves_to_a_bracket_then_bisects_it(knee: float, expected: tuple[float | None, float | None],
                                                               ladder: list[float], midpoints: list[float]) -> None:
    tried: list[float] = []

    def holds(rate: float) -> bool:
        tried.append(rate)
        return rate <= knee

    assert search(25, 6400, 2, holds) == expected
    # every step in order: the ladder (doubling or halving) until the knee is bracketed, then the bisection steps
    assert tried == ladder + midpoints


def test_each_bisection_step_halves_the_bracket() -> None:
    knee = 1234.0
    tried: list[float] = []

    def holds(rate: float) -> bool:
        tried.append(rate)
        return rate <= knee

    good, bad = search(100, 10_000, 5, holds)
    ladder, midpoints = tried[:5], tried[5:]
    assert ladder == [100, 200, 400, 800, 1600] and len(midpoints) == 5
    low, high = 800.0, 1600.0  # the bracket the ladder found
    for middle in midpoints:
        assert low < middle < high and abs(middle - (low + high) / 2) <= 0.05  # the midpoint, to 0.1/s
        width = high - low
        low, high = (middle, high) if middle <= knee else (low, middle)
        assert high - low == pytest.approx(width / 2, abs=0.1)
    assert (good, bad) == (low, high) and low <= knee < high and high - low <= 800 / 2 ** 5 + 0.1


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
