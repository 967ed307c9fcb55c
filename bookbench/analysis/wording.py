"""Ratios said in words: "39x lower", "12 % higher", and their intervals, for headlines and tables.

A ratio is candidate / baseline. Below 2x a change reads better as a percentage, beyond it as a factor.
"""

from __future__ import annotations


def _parts(ratio: float) -> tuple[str, str]:
    """(amount, direction): 0.0255 -> ("39x", "lower"), 0.88 -> ("12 %", "lower"), 1 -> ("", "unchanged")."""
    if ratio <= 0:
        raise ValueError(f"a ratio must be positive, got {ratio}")
    if ratio == 1:
        return "", "unchanged"
    factor = 1 / ratio if ratio < 1 else ratio
    direction = "lower" if ratio < 1 else "higher"
    if factor >= 2:
        return (f"{factor:.0f}x" if factor >= 10 else f"{factor:.1f}x"), direction
    return f"{100 * (factor - 1) if ratio > 1 else 100 * (1 - ratio):.0f} %", direction


def change(ratio: float) -> str:
    """0.0255 -> "39x lower"; 0.88 -> "12 % lower"; 1.15 -> "15 % higher"; 63.2 -> "63x higher"."""
    amount, direction = _parts(ratio)
    return f"{amount} {direction}".strip()


def interval(low: float, high: float) -> str:
    """A ratio's interval in the same words, the smaller change first: "21x-45x lower", "8-15 % lower",
    "3 % lower to 8 % higher"."""
    if low > high:
        raise ValueError(f"interval bounds out of order: {low} > {high}")
    near, far = (high, low) if high < 1 else (low, high)
    (a, d1), (b, d2) = _parts(near), _parts(far)
    if d1 == d2 and d1 != "unchanged":
        if a.endswith("x") == b.endswith("x"):
            return f"{a.removesuffix(' %')}-{b} {d1}" if a.endswith("%") else f"{a}-{b} {d1}"
        return f"{a} to {b} {d1}"
    return f"{change(low)} to {change(high)}"
