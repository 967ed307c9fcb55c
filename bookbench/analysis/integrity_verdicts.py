"""The judge's verdicts that hold whatever scenarios.yaml says: the integrity counts that must be exactly zero or
equal (double, lost and phantom bookings, the three request counts), the samples file against its recorded checksum,
and the check suites."""

from __future__ import annotations

import dataclasses
from typing import Any

from bookbench.analysis.verdict import Verdict
from bookbench.artifacts.manifest import ScenarioEntry
from bookbench.artifacts.summary import ScenarioSummary

# the suites' names; the counts a page shows next to them come from the checks that ran (matrix())
CHECK_SUITES = (("smoke", "Smoke tests"), ("uat", "UAT tests"), ("stress", "Stress test"),
                ("preflight", "Preflight: one booking function, advisory lock, READ COMMITTED, isolation"))
INTEGRITY_METRICS = ("double_bookings", "lost_bookings", "phantom_bookings", "count_mismatch")
NO_DATABASE = "no database access during the run (--dsn)"


def samples_file_verdicts(name: str, sc: ScenarioSummary | None) -> list[Verdict]:
    """The samples file against the row count and checksum recorded when it was closed. Damaged (missing,
    truncated, not gzip, altered, a bad row) fails the scenario: figures from part of a file are not a PASS. A run
    folder that recorded nothing to check against gives no verdict; its page says "not verified"."""
    found = sc.samples_file if sc else None
    if not found or found.status == "not verified":
        return []
    n = found.rows or 0
    if found.status == "damaged":
        return [Verdict("integrity", name, "samples_file", None, None, "fail", n,
                        f"samples file damaged: {found.detail}")]
    return [Verdict("integrity", name, "samples_file", None, None, "pass", n, found.detail or "")]



def integrity_verdicts(name: str, entry: ScenarioEntry, ran: bool, killed: bool = False) -> list[Verdict]:
    """What must be exactly zero or equal whatever the thresholds say. `killed`: the run died (SIGKILL, a reboot)
    after it had its database: its audit never came."""
    if not ran:
        return [Verdict("integrity", name, m, None, 0, "not run", 0) for m in INTEGRITY_METRICS]
    counts = entry.counts
    n = counts.samples if counts else 0

    def zero(metric: str, value: float | None, detail: str = "") -> Verdict:
        if value is None:
            return Verdict("integrity", name, metric, None, 0, "not run", n, detail)
        return Verdict("integrity", name, metric, value, 0, "pass" if value == 0 else "fail", n)

    no_db = entry.integrity_unmeasured or NO_DATABASE
    audit, recon = entry.audit, entry.reconciliation
    others = [c for c in (counts.locust, counts.service) if c is not None] if counts else []
    out = [zero("double_bookings", audit["overlaps"] if audit else None, no_db),
           zero("lost_bookings", recon["lost"] if recon else None, no_db),
           zero("phantom_bookings", recon["phantom"] if recon else None, no_db),
           zero("count_mismatch", max((abs(n - c) for c in others), default=0) if counts else None,
                "no request counts")]
    skipped = entry.integrity_skipped
    if skipped is None and killed and entry.audit is None and entry.integrity_unmeasured is None:
        skipped = "the run was killed before its audit and reconciliation"
    if skipped:
        # one rule however it came about (a third Ctrl-C, a killed run): bookings never checked are not a GO
        out[:3] = [Verdict("integrity", name, v.metric, None, 0, "fail", n,
                           f"audit and reconciliation not run: {skipped}") for v in out[:3]]
    if entry.fault == "load generator":
        # requests lost with a dead worker look like phantom bookings and a count mismatch: not the service's
        out = [dataclasses.replace(v, detail=f"{v.detail + '; ' if v.detail else ''}{entry.aborted}")
               if v.metric in ("phantom_bookings", "lost_bookings", "count_mismatch") else v for v in out]
    return out


def check_verdicts(checks: list[dict[str, Any]] | None) -> list[Verdict]:
    # the notifications suite is Path B's end-to-end evidence: its own kind, so that a run that could not
    # exercise it (a deployment) is not made incomplete by its absence
    suites = [(suite, "check") for suite, _label in CHECK_SUITES] + [("notifications", "notification")]
    out = []
    for suite, kind in suites:
        mine = [c for c in checks or [] if c["suite"] == suite and not c.get("skipped")]
        # a suite not applicable to the run's target profile is recorded as skipped: not run, never a pass
        skipped = next((c["detail"] for c in checks or [] if c["suite"] == suite and c.get("skipped")), None)
        if not mine:
            out.append(Verdict(kind, "checks", suite, None, 0, "not run", 0, skipped or (
                "checks not run with this load run (--skip-checks; compare runs them once, in its first round)"
                if checks is None else "not part of this run's checks")))
            continue
        failed = [c["name"] for c in mine if not c["passed"]]
        detail = f"{len(mine) - len(failed)}/{len(mine)} passed" + (f"; failed: {', '.join(failed)}" if failed else "")
        out.append(Verdict(kind, "checks", suite, len(failed), 0, "fail" if failed else "pass", len(mine), detail))
    return out

