"""The benchmarks' stated goals: each printed with its verdict; under `make bench-check` a missed one fails its test.

`make bench` only prints (a benchmark never gates CI on a timing). `make bench-check` (pytest --bench-check, or
BOOKBENCH_BENCH_CHECK=1) additionally fails every test that missed a goal it states, after the test has printed
all of its figures: the conftest's hook collects the misses of the test that just ran.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Callable

CHECK_ENV = "BOOKBENCH_BENCH_CHECK"
_OPS: dict[str, Callable[[float, float], bool]] = {">=": operator.ge, "<=": operator.le, ">": operator.gt,
                                                   "<": operator.lt}
_missed: list[str] = []


def checking() -> bool:
    """Whether a missed goal fails its test (set by --bench-check or the environment)."""
    return os.environ.get(CHECK_ENV, "") not in ("", "0")


def goal(name: str, measured: float, op: str, target: float, unit: str = "") -> bool:
    """Print `name: measured (goal op target: met / NOT met)` and remember a miss; whether the goal was met."""
    met = _OPS[op](measured, target)
    line = f"{name}: {measured:.3g}{unit} (goal {op} {target:g}{unit}: {'met' if met else 'NOT met'})"
    print(line)
    if not met:
        _missed.append(line)
    return met


def take_missed() -> list[str]:
    """The goals missed since the last call (and forget them)."""
    missed = list(_missed)
    _missed.clear()
    return missed
