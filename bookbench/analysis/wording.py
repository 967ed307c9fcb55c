"""Ratios said in words, one rule for every page and the terminal.

A ratio is candidate / baseline. Alone, a change below 2x reads better as a percentage and one beyond it as a factor
("12 % lower", "39x lower"). An uncertain result reads verdict first, then the estimate and its interval in one
notation: "no detectable change: P95 32 % lower, 95 % CI from 45 % lower to 50 % higher"; percent only when both
ends of the interval are within 2x, else factors throughout ("... P95 1.5x lower, 95 % CI from 3.3x lower to 1.5x
higher"), so a reader never converts between notations inside one sentence.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from bookbench.artifacts.comparison import Adjusted, Interval, NotCompared

Notation = Literal["percent", "factor"]

# the verdicts of bookbench.analysis.stats.verdict as the reader sees them; improved/regressed say the direction
# (the page's colour says whether that direction is good), "no change" says what it is: the interval contains 1
_SHOWN = {"no change": "no detectable change"}
CLAIMS = ("improved", "regressed")


def _check(ratio: float) -> None:
    if not ratio > 0:
        raise ValueError(f"a ratio must be positive, got {ratio}")


def notation(low: float, high: float) -> Notation:
    """Percent when both ends of the interval are within 2x of no change, else factor for both."""
    _check(low)
    _check(high)
    return "percent" if max(high, 1 / low) < 2 else "factor"


def _amount(ratio: float, how: Notation) -> str:
    """The size of a change without its direction: 0.0255 -> "39x", 0.88 -> "12 %" (percent), "1.1x" (factor)."""
    factor = 1 / ratio if ratio < 1 else ratio
    if how == "factor":
        # 9.96 is "10x", not "10.0x"; below 1.05 a second decimal keeps a real change from reading "1.0x"
        return f"{factor:.0f}x" if round(factor, 1) >= 10 else f"{factor:.1f}x" if factor >= 1.05 else f"{factor:.2f}x"
    pct = 100 * (ratio - 1) if ratio > 1 else 100 * (1 - ratio)
    return f"{pct:.0f} %" if pct >= 0.95 else f"{pct:.1f} %"  # "0.4 %" rather than a change of "0 %"


def change(ratio: float, how: Notation | None = None) -> str:
    """0.0255 -> "39x lower"; 0.88 -> "12 % lower"; 1.15 -> "15 % higher"; 1 -> "unchanged". Without `how`, percent
    below 2x and factor beyond; with it, that notation (to match an interval's)."""
    _check(ratio)
    if ratio == 1:
        return "unchanged"
    how = how or ("factor" if max(ratio, 1 / ratio) >= 2 else "percent")
    amount = _amount(ratio, how)
    if amount in ("0.0 %", "1.00x"):  # too small to say at this precision
        return "unchanged"
    return f"{amount} {'lower' if ratio < 1 else 'higher'}"


def interval(low: float, high: float) -> str:
    """A ratio's interval in one notation, "from A to B": ends on the same side of 1 share their direction and the
    smaller change comes first ("from 21x to 45x lower", "from 8 % to 15 % lower"); ends on either side go from low
    to high ("from 45 % lower to 50 % higher", "from 3.3x lower to 1.5x higher"); an end exactly at 1 is "no change"
    ("from no change to 20 % higher")."""
    if low > high:
        raise ValueError(f"interval bounds out of order: {low} > {high}")
    how = notation(low, high)
    if low == high == 1:
        return "exactly no change"
    if high < 1:  # both lower: the end nearer 1 (high) is the smaller change
        return f"from {_amount(high, how)} to {_amount(low, how)} lower"
    if low > 1:
        return f"from {_amount(low, how)} to {_amount(high, how)} higher"
    ends = ["no change" if x == 1 else change(x, how) for x in (low, high)]
    return f"from {ends[0]} to {ends[1]}"


def verdict(word: str, ratio: float) -> str:
    """The verdict as a reader sees it: "improved" / "regressed" (better or worse for this metric: the estimate that
    follows says the direction), "no change" as "no detectable change"; other states ("within noise", a reason) as
    they are. `ratio` is kept for callers that word a verdict without its estimate."""
    del ratio
    return _SHOWN.get(word, word)


def metric(name: str) -> str:
    """A metric's name in a sentence: "p95" -> "P95", "throughput" as it is."""
    return name if name == "throughput" else name.upper()


def estimate(label: str, ratio: float, low: float, high: float) -> str:
    """"P95 32 % lower, 95 % CI from 45 % lower to 50 % higher": estimate and interval in the interval's notation."""
    said = change(ratio, notation(low, high))
    return f"{label + ' ' if label else ''}{said}, 95 % CI {interval(low, high)}"


def result(label: str, ci: Interval | Adjusted | NotCompared | Mapping[str, Any]) -> str:
    """One compared figure, verdict first: "improved: P95 20x lower, 95 % CI from 15x to 27x lower"; a figure that
    could not be compared is its reason (NotCompared, e.g. too few samples). A plain mapping is such a cell as
    sweep.json keeps it."""
    if isinstance(ci, Mapping):
        ci = NotCompared.model_validate(ci) if "error" in ci else Adjusted.model_validate(
            {k: ci[k] for k in ("ratio", "low", "high", "verdict")})
    if isinstance(ci, NotCompared):
        return ci.error
    return f"{verdict(ci.verdict, ci.ratio)}: {estimate(label, ci.ratio, ci.low, ci.high)}"
