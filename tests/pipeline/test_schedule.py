"""Run orders: two variants alternate, k variants follow a Williams design (every variant at every position and
after every other variant equally often), rounds beyond the design repeat it, and the fixed order stays A B C."""

from __future__ import annotations

from collections import Counter

import pytest

from bookbench.pipeline.schedule import round_order, schedule, williams


def test_two_variants_alternate() -> None:
    assert schedule(2, 5) == [[0, 1], [1, 0], [0, 1], [1, 0], [0, 1]]
    assert schedule(2, 3, "fixed") == [[0, 1]] * 3


@pytest.mark.parametrize("k", range(1, 9))
def test_williams_is_balanced_for_position_and_first_order_carry_over(k: int) -> None:
    rows = williams(k)
    assert len(rows) == (2 * k if k % 2 and k > 1 else k)
    for row in rows:
        assert sorted(row) == list(range(k))
    per_position = [Counter(row[p] for row in rows) for p in range(k)]
    assert all(set(c.values()) == {len(rows) // k} and len(c) == k for c in per_position)
    followers = Counter((row[i], row[i + 1]) for row in rows for i in range(k - 1))
    if k > 1:
        assert len(followers) == k * (k - 1) and len(set(followers.values())) == 1


def test_rounds_beyond_the_design_repeat_it() -> None:
    rows = williams(3)
    assert [round_order(3, r) for r in range(2 * len(rows))] == rows + rows
    assert round_order(3, 7, "fixed") == [0, 1, 2]
    with pytest.raises(ValueError):
        round_order(3, -1)
    with pytest.raises(ValueError):
        williams(0)
