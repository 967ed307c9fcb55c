"""Runs named check suites against a target and collects their results in order; suites that only apply to the
reference service are reported as not applicable (skipped, never a pass) for any other profile."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
import httpx

from bookbench.checks import database, functional, notifications, stress
from bookbench.checks.base import CheckResult, CheckTarget, not_applicable
from bookbench.errors import DatabaseError
from bookbench.target.template import TemplateError

SUITES = ("smoke", "uat", "stress", "preflight", "notifications", "hostile", "audit")
HOSTILE_EXAMPLES = 300  # generated requests per endpoint by default (bookbench.checks.hostile)
# why a suite needs the reference service (its routes, its schema's booking function, its outbox)
REFERENCE_ONLY = {
    "preflight": "it inspects the reference schema's booking function (book_appointment_atomic)",
    "notifications": "it drives the reference service's outbox and bookbench's fake SMS and calendar providers",
    "hostile": "its probes are written for the reference service's routes and answers",
}


async def run_suites(target: CheckTarget, suites: list[str], repeat: int = 1,
                     examples: int = HOSTILE_EXAMPLES) -> list[CheckResult]:
    table: dict[str, Callable[[], Awaitable[list[CheckResult]]]] = {
        "smoke": lambda: functional.run_smoke(target),
        "uat": lambda: functional.run_uat(target),
        "stress": lambda: stress.run(target, repeat),
        "preflight": lambda: database.run_preflight(target),
        "notifications": lambda: notifications.run(target),
        "hostile": lambda: _hostile(target, examples),
        # the audit runs last so that it also covers every booking the other suites just made
        "audit": lambda: database.run_audit(target),
    }
    results: list[CheckResult] = []
    for name in SUITES:
        if name not in suites:
            continue
        if name in REFERENCE_ONLY and not target.reference:
            results.append(not_applicable(name, target.profile_name, REFERENCE_ONLY[name]))
            continue
        try:
            results.extend(await table[name]())
        except (httpx.HTTPError, asyncpg.PostgresError, OSError, RuntimeError, DatabaseError, KeyError) as exc:
            # a suite that cannot run is a failed check with the reason, and the other suites still run
            detail = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, TemplateError):
                # the login call's templates (request templates already say so as a usage error)
                detail = (f"the profile names {{{exc.args[0]}}}, which has no value here (an environment variable "
                          "not set, or a credential field the credentials do not hold)")
            if isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code == 401:
                detail += " (wrong --key-secret, or a deployment not seeded by bookbench db seed?)"
            results.append(CheckResult(name, "suite could not run", False, detail))
    return results


async def _hostile(target: CheckTarget, examples: int) -> list[CheckResult]:
    # imported here: hypothesis costs every other command a fifth of a second at start
    from bookbench.checks import hostile

    return await hostile.run(target, examples)
