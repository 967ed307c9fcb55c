"""Run orders for rounds of k variants: which variant runs at which position of each round (pure, no I/O).

Why not A B C in every round: anything that depends on a run's place in its round (what the previous run left
behind, a trend inside the round, a neighbour whose cycle lines up with ours) is then attributed to the set, and
the paired interval cannot see it. A counterbalanced order puts every variant at every position equally often,
so such an effect cancels from the set comparison and can be measured on its own (analysis.inference).
"""

from __future__ import annotations

from typing import Literal

Order = Literal["fixed", "balanced"]
ORDERS: tuple[Order, ...] = ("fixed", "balanced")


def williams(k: int) -> list[list[int]]:
    """A Williams design for k variants: every variant at every position equally often and, for every ordered
    pair (a, b), b directly after a equally often (balanced for first-order carry-over). k rows for even k; for
    odd k no k-row square has the carry-over balance, so the rows are followed by their mirror images (2k rows).
    k = 2 gives A B, B A: alternation."""
    if k < 1:
        raise ValueError(f"a design needs at least one variant, got {k}")
    # the first row zig-zags 0, 1, k-1, 2, k-2, ...: its successive differences are all distinct mod k, which
    # is what makes each cyclic shift of it add every ordered neighbour pair exactly once
    first, low, high = [0], 1, k - 1
    for j in range(1, k):
        if j % 2:
            first.append(low)
            low += 1
        else:
            first.append(high)
            high -= 1
    rows = [[(v + shift) % k for v in first] for shift in range(k)]
    if k % 2 and k > 1:
        rows += [row[::-1] for row in rows]
    return rows


def round_order(k: int, round_index: int, order: Order = "balanced") -> list[int]:
    """The variants (indices 0..k-1) in the order they run in round `round_index` (0-based); rounds beyond the
    design repeat it, so only a number of rounds that is a multiple of the design's rows is exactly balanced."""
    if round_index < 0:
        raise ValueError(f"round index must be >= 0, got {round_index}")
    if order == "fixed":
        return list(range(k))
    rows = williams(k)
    return rows[round_index % len(rows)]


def schedule(k: int, rounds: int, order: Order = "balanced") -> list[list[int]]:
    """Every round's order: schedule(2, 3) == [[0, 1], [1, 0], [0, 1]]."""
    return [round_order(k, r, order) for r in range(rounds)]
