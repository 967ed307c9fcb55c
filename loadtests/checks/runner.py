"""Runs named check suites against a target and collects their results in order."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from loadtests.checks import database, functional, stress
from loadtests.checks.base import CheckResult, CheckTarget

SUITES = ("smoke", "uat", "stress", "preflight", "audit")


async def run_suites(target: CheckTarget, suites: list[str], repeat: int = 1) -> list[CheckResult]:
    table: dict[str, Callable[[], Awaitable[list[CheckResult]]]] = {
        "smoke": lambda: functional.run_smoke(target),
        "uat": lambda: functional.run_uat(target),
        "stress": lambda: stress.run(target, repeat),
        "preflight": lambda: database.run_preflight(target),
        # the audit runs last so that it also covers every booking the other suites just made
        "audit": lambda: database.run_audit(target),
    }
    results: list[CheckResult] = []
    for name in SUITES:
        if name in suites:
            results.extend(await table[name]())
    return results
