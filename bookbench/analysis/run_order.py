"""A run's place in its round: the schedule's design, each run's position, and the position effect (a later run
of a round measuring differently whichever set ran) estimated over a comparison's runs and said in words."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bookbench.analysis import inference, wording
from bookbench.artifacts import manifest as manifest_file
from bookbench.artifacts.comparison import Design, PositionEffect

# each variant's runs in round order, per metric its figure or why it has none
Figures = dict[str, list[dict[str, inference.RunFigure | str]]]
Positions = dict[str, list[int]]
# a detectable position effect of one metric and every run's position: what an interval is recomputed without
Shift = tuple[PositionEffect | None, Positions | None]


def placements(variants: dict[str, list[Path]]) -> Positions | None:
    """Each run's position inside its round (0 = first), from the manifests' recorded positions or, for runs from
    before schedules were recorded, the order in which the round's runs started; None when runs are unpaired."""
    if len({len(runs) for runs in variants.values()}) != 1:
        return None
    manifests = {label: [manifest_file.read(d) for d in runs] for label, runs in variants.items()}
    out: Positions = {label: [] for label in variants}
    for i in range(len(next(iter(variants.values())))):
        ms = {label: manifests[label][i] for label in variants}
        recorded = all(m.position is not None for m in ms.values())
        order = sorted(ms, key=lambda lb: (ms[lb].position or 0, ms[lb].started_at) if recorded
                       else (0, ms[lb].started_at))
        for label in variants:
            out[label].append(order.index(label))
    return out


def design(positions: Positions | None) -> Design:
    """"balanced" (every variant equally often at every position), "fixed" (every variant always at one
    position), "unbalanced", "single round" or "unpaired"."""
    if positions is None:
        return "unpaired"
    k, rounds = len(positions), len(next(iter(positions.values())))
    if rounds < 2:
        return "single round"
    if all(len(set(p)) == 1 for p in positions.values()):
        return "fixed"
    counts = {p.count(pos) for p in positions.values() for pos in range(k)}
    return "balanced" if len(counts) == 1 else "unbalanced"


def position_effect(figures: Figures, positions: Positions | None, metric: str,
                    prior: inference.NoisePrior | None) -> PositionEffect | None:
    """The later-vs-first effect of one metric over every variant's runs; None when it cannot be estimated."""
    if positions is None:
        return None
    placed = []
    for v, (label, runs) in enumerate(figures.items()):
        for i, run in enumerate(runs):
            f = run[metric]
            if isinstance(f, str):
                return None
            placed.append(inference.PlacedFigure(v, i, positions[label][i], f))
    return inference.position_effect(placed, metric, prior)


def without(effect: PositionEffect, runs: list[inference.RunFigure],
            positions: list[int]) -> list[inference.RunFigure]:
    """A variant's runs with the position effect taken out of every run that was not first in its round."""
    return [replace(f, value=f.value / effect.ratio) if positions[i] > 0 else f for i, f in enumerate(runs)]


def position_words(scenario: str, moved: dict[str, PositionEffect], k: int) -> str:
    """"burst: the second run of a round was slower, whichever set ran: P50 38 % higher, 95 % CI from 20 % to
    58 % higher; throughput 22 % lower, ..."."""
    slower = [(e.ratio > 1) == (m != "throughput") for m, e in moved.items()]
    how = "slower" if all(slower) else ("faster" if not any(slower) else "different")
    which = "the second run of a round" if k == 2 else "a run later in its round than first"
    parts = [wording.estimate(wording.metric(m), e.ratio, e.low, e.high) for m, e in moved.items()]
    return (f"{scenario}: {which} was {how}, whichever set ran: {'; '.join(parts)}. Verdicts whose class or "
            "direction depends on it are downgraded to within noise.")
