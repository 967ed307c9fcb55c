"""The load shape as a pure function of time: no Locust, no load."""

import pytest

from bookbench.spec.scenarios import Stage
from bookbench.spec.shape import batch_edges, users_at

RAMP = [Stage(duration_s=20, users=5, spawn_rate=0.25), Stage(duration_s=25, users=5)]


@pytest.mark.parametrize(("t", "expected"), [
    (0, (5, 0.25)), (19.99, (5, 0.25)), (20, (5, 5.0)), (44.9, (5, 5.0)), (45, None), (1000, None),
])
def test_ramp_up_ticks(t: float, expected: tuple[int, float] | None) -> None:
    assert users_at(RAMP, t) == expected


def test_burst_starts_everyone_at_once_and_zero_users_is_refused() -> None:
    assert users_at([Stage(duration_s=10, users=30)], 0) == (30, 30.0)
    # a stage without users measures nothing and used to crash the report: refused when the file is read
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        Stage(duration_s=5, users=0)


def test_negative_time_is_an_error() -> None:
    with pytest.raises(ValueError, match="negative"):
        users_at(RAMP, -1)


def test_batches_split_the_window_evenly() -> None:
    edges = batch_edges(5, 105, 10)
    assert len(edges) == 10 and edges[0] == (5, 15) and edges[-1] == (95, 105)
