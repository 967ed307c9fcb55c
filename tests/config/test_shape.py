"""The load shape as a pure function of time: no Locust, no load."""

import itertools

import pytest

from bookbench.config.scenarios import Stage
from bookbench.config.shape import batch_edges, users_at

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


def test_open_model_stages_are_validated() -> None:
    from pydantic import ValidationError

    from bookbench.config.scenarios import Scenario

    with pytest.raises(ValidationError, match="either users"):
        Stage(duration_s=1, users=2, arrival_rate=5)
    with pytest.raises(ValidationError, match="either users"):
        Stage(duration_s=1)
    with pytest.raises(ValidationError, match="mix users and arrival_rate"):
        Scenario(stages=[Stage(duration_s=1, users=2), Stage(duration_s=1, arrival_rate=5)])
    open_one = Scenario(stages=[Stage(duration_s=1, arrival_rate=5)])
    assert open_one.open_model and users_at(open_one.stages, 0.5, processes=3) == (3, 3.0)


def test_arrival_times_follow_the_rate_and_the_spacing() -> None:
    import random

    from bookbench.config.shape import arrival_times

    stages = [Stage(duration_s=10, arrival_rate=50), Stage(duration_s=10, arrival_rate=200)]
    uniform = list(arrival_times(stages, "uniform", random.Random(1)))
    assert abs(len(uniform) - 2500) <= 2
    assert uniform[1] - uniform[0] == pytest.approx(0.02) and uniform[-1] - uniform[-2] == pytest.approx(0.005)
    poisson = list(arrival_times(stages, "poisson", random.Random(2)))
    first, second = [t for t in poisson if t < 10], [t for t in poisson if t >= 10]
    # Poisson counts: sd = sqrt(mean); 4 sd covers it with a fixed seed either way
    assert abs(len(first) - 500) < 4 * 500 ** 0.5 and abs(len(second) - 2000) < 4 * 2000 ** 0.5
    assert all(b > a for a, b in itertools.pairwise(poisson))
    # two processes each take half the rate
    half = list(arrival_times(stages, "uniform", random.Random(1), share=0.5))
    assert abs(len(half) - 1250) <= 2
