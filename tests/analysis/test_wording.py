"""The one wording rule for uncertain results: verdict first, then the estimate and its interval in one notation
(percent when both ends are within 2x, else factor for both)."""

from __future__ import annotations

import pytest

from bookbench.analysis import comparison, wording
from bookbench.artifacts.comparison import Adjusted, Cell, Comparison, Interval, NotCompared, Row


def _ci(ratio: float, low: float, high: float, verdict: str) -> Adjusted:
    return Adjusted(ratio=ratio, low=low, high=high, verdict=verdict)


def _interval(ratio: float, low: float, high: float, verdict: str) -> Interval:
    """A compared P95 as compare.json holds it; only the ratio, its interval and the verdict matter here."""
    return Interval(metric="p95", baseline=1.0, candidate=ratio, ratio=ratio, low=low, high=high, verdict=verdict,
                    noise_used=0.05, rounds=1, paired=True, df=2, sd_pair=0.1, variance_source="test",
                    run_ratios=[ratio], n_baseline=100, n_candidate=100, blocks_baseline=10, blocks_candidate=10)


def _comparison(scenarios: dict[str, dict[str, dict[str, Cell]]]) -> Comparison:
    """A comparison of none (the baseline) against seed and recommended with these P95 cells per scenario."""
    rows = {name: {label: Row(requests=0, runs=1, vs_baseline=cells, vs={}) for label, cells in sets.items()}
            for name, sets in scenarios.items()}
    sets = list(next(iter(scenarios.values())))
    plan = comparison.nothing_compared({label: label for label in sets}, 0.05)
    return plan.model_copy(update={"scenarios": rows, "repeat": 1})


def test_an_improvement_beyond_2x_reads_in_factors_smaller_change_first() -> None:
    text = wording.result("P95", _ci(1 / 20, 1 / 27, 1 / 15, "improved"))
    assert text == "improved: P95 20x lower, 95 % CI from 15x to 27x lower"


def test_a_regression_within_2x_reads_in_percent() -> None:
    text = wording.result("P95", _ci(1.12, 1.05, 1.2, "regressed"))
    assert text == "regressed: P95 12 % higher, 95 % CI from 5 % to 20 % higher"
    # lower throughput is a regression too: the verdict says better or worse, the estimate says the direction
    assert wording.result("throughput", _ci(0.8, 0.7, 0.9, "regressed")).startswith("regressed: throughput 20 % lower")


def test_an_interval_that_would_mix_notations_is_said_in_factors_end_to_end() -> None:
    # the example: 32 % lower with an interval from 3.3x lower to 50 % higher
    text = wording.result("P95", _ci(0.68, 0.3, 1.5, "no change"))
    assert text == "no detectable change: P95 1.5x lower, 95 % CI from 3.3x lower to 1.5x higher"
    assert "%" not in text.removeprefix("no detectable change: P95").replace("95 % CI", "")
    # both ends within 2x: percent throughout, low to high across no change
    assert wording.result("P95", _ci(0.68, 0.55, 1.5, "no change")) == \
        "no detectable change: P95 32 % lower, 95 % CI from 45 % lower to 50 % higher"


def test_no_change_and_the_other_states_keep_their_meaning() -> None:
    assert wording.result("P50", _ci(1.0, 0.9, 1.1, "no change")) == \
        "no detectable change: P50 unchanged, 95 % CI from 10 % lower to 10 % higher"
    assert wording.result("P95", _ci(0.97, 0.95, 0.99, "within noise")) == \
        "within noise: P95 3 % lower, 95 % CI from 1 % to 5 % lower"
    reason = "seed#1: too few samples (18 requests, minimum 20)"
    assert wording.result("P95", NotCompared(error=reason)) == reason
    # a cell as sweep.json keeps it reads the same
    assert wording.result("P95", {"error": reason}) == reason
    assert wording.result("P95", _interval(0.97, 0.95, 0.99, "within noise").model_dump()) == \
        "within noise: P95 3 % lower, 95 % CI from 1 % to 5 % lower"


def test_bounds_exactly_at_one() -> None:
    assert wording.interval(1.0, 1.2) == "from no change to 20 % higher"
    assert wording.interval(0.25, 1.0) == "from 4.0x lower to no change"
    assert wording.interval(1.0, 1.0) == "exactly no change"
    assert wording.change(1.0) == "unchanged"
    # 2x exactly is the first factor: an interval reaching it is said in factors
    assert wording.notation(0.6, 1.99) == "percent" and wording.notation(0.6, 2.0) == "factor"
    assert wording.notation(0.5, 1.2) == "factor"


def test_a_change_alone_keeps_its_own_notation_and_bad_input_is_refused() -> None:
    assert [wording.change(r) for r in (0.0255, 0.88, 1.15, 63.2)] == \
        ["39x lower", "12 % lower", "15 % higher", "63x higher"]
    assert wording.change(0.88, "factor") == "1.1x lower"
    with pytest.raises(ValueError, match="positive"):
        wording.change(0)
    with pytest.raises(ValueError, match="out of order"):
        wording.interval(1.2, 0.9)


def test_rounding_never_hides_or_inflates_a_change() -> None:
    assert wording.change(1.002) == "0.2 % higher" and wording.change(1.0001) == "unchanged"
    assert wording.change(1 / 9.96) == "10x lower" and wording.change(1.02, "factor") == "1.02x higher"
    assert wording.interval(0.996, 1.004) == "from 0.4 % lower to 0.4 % higher"


def test_the_compare_headline_says_when_no_candidate_could_be_compared() -> None:
    def result(p95: Cell) -> Comparison:
        return _comparison({"single": {"none": {}, "recommended": {"p95": p95}}})

    assert comparison._headline(result(NotCompared(error="none: too few samples to compare")), None) == \
        "No scenario had enough samples to compare any candidate with none (see the table)."
    assert comparison._headline(result(_interval(0.5, 0.4, 0.6, "improved")), None) == \
        "No candidate is named the best against none."


def test_the_compare_terminal_says_every_p95_by_the_same_rule() -> None:
    from bookbench.pipeline.compare import p95_lines

    result = _comparison({
        "burst": {"none": {}, "seed": {"p95": _interval(0.68, 0.3, 1.5, "no change")},
                  "recommended": {"p95": _interval(1 / 33, 1 / 40, 1 / 28, "improved")}},
        "single": {"none": {}, "seed": {"p95": NotCompared(error="none: too few samples")}, "recommended": {}}})
    assert p95_lines(result) == [
        "  burst: seed against none, no detectable change: P95 1.5x lower, 95 % CI from 3.3x lower to 1.5x higher",
        "  burst: recommended against none, improved: P95 33x lower, 95 % CI from 28x to 40x lower",
        "  single: seed against none, none: too few samples"]
