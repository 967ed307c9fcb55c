"""The one judge: every verdict on a run (thresholds, review targets, alert rules, integrity, checks, the index
gate) and the decision GO / NO-GO / INCOMPLETE. report.html, review.html, compare.html, verdicts.json, JUnit and
exit codes only display what this module decides, so no two of them can disagree.

Decision rules:
* NO-GO: any verdict failed, or a scenario that ran recorded no request ("no data");
* INCOMPLETE: nothing failed, but something the seed's go/no-go matrix asks for was not run (checks skipped,
  no database access for the audit, a scenario never started) or the run was quick, interrupted or failed;
* GO: everything ran in full and passed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict
from typing import Any

from bookbench.analysis.caveats import by_design, caveats, index_gate, index_set_label, notifications_reason, rules
from bookbench.analysis.integrity_verdicts import (
    CHECK_SUITES,
    INTEGRITY_METRICS,
    check_verdicts,
    integrity_verdicts,
    samples_file_verdicts,
)
from bookbench.analysis.limits import NOTIFICATION_METRICS, drift_verdicts, effective_limits, scenario_verdicts
from bookbench.analysis.verdict import Judgement, Row, Verdict, describe, describe_item, format_value, worst_status
from bookbench.artifacts.manifest import Manifest
from bookbench.artifacts.summary import Summary
from bookbench.artifacts.verdicts import VerdictRecord, VerdictsFile

# what the pages, the terminal and the tests import from the judge, wherever it is defined
__all__ = ["Judgement", "Row", "Verdict", "describe", "describe_item", "effective_limits", "format_value",
           "index_set_label", "judge", "matrix", "notifications_reason", "path_b", "rules", "to_file", "worst_status"]


def path_b(j: Judgement, summary: Summary) -> tuple[str, str, list[Row]]:
    """The seed's deployment decision: (path "A" | "B" | "none", the sentence, Path B's success criteria rows).
    A: the booking verdicts hold; B: they hold and so does every Path B criterion, measured."""
    notes = {n: sc.notifications for n, sc in summary.scenarios.items() if sc.notifications}
    mine = [v for v in j.verdicts if v.kind == "notification"]
    booking = [v for v in j.verdicts if v.kind != "notification"]
    booking_ok = not any(v.failed for v in booking)
    sms = [v for v in mine if v.metric == "sms_p95_s"]
    lost = [v for v in mine if v.metric == "notifications_lost"]
    check = [v for v in mine if v.metric == "notifications"]
    worst_sms = max((v for v in sms if v.value is not None), key=lambda v: v.value or 0, default=None)
    cal_expected = sum(n.calendar.expected for n in notes.values())
    cal_delivered = sum(n.calendar.delivered for n in notes.values())
    conflicts = sum(n.conflicts_flagged for n in notes.values())
    rows = [
        Row("All booking tests pass", "pass" if booking_ok else "fail",
            "every booking verdict holds" if booking_ok
            else f"{sum(v.failed for v in booking)} booking verdict(s) fail"),
        Row("SMS sends within 30 seconds", worst_status(sms) if sms else "not run",
            f"worst P95 {worst_sms.value:.1f} s in {worst_sms.scenario} (n={worst_sms.samples:,})"
            if worst_sms else "not measured"),
        Row("Events created on the calendar",
            ("pass" if cal_delivered == cal_expected else "fail") if notes else "not run",
            f"{cal_delivered:,} of {cal_expected:,} calendar changes delivered" if notes else "not measured"),
        Row("Calendar conflicts detected and handled", worst_status(check) if check else "not run",
            f"{conflicts} conflict(s) flagged during the load; the conflict check: "
            f"{check[0].detail if check else 'not run'}"),
        Row("No notification lost (drain timeout)", worst_status(lost) if lost else "not run",
            ", ".join(f"{v.scenario}: {format_value(v.metric, v.value)} of {v.samples:,}" for v in lost
                      if v.value is not None) or "not measured"),
        Row("End-to-end flow verified (check notifications)", worst_status(check) if check else "not run",
            check[0].detail if check else "not run"),
    ]
    b_ok = all(r.status == "pass" for r in rows)
    if booking_ok and b_ok:
        return "B", "The evidence supports Path B: booking + SMS + calendar.", rows
    if booking_ok:
        missing = [r.label for r in rows[1:] if r.status != "pass"]
        return "A", ("The evidence supports Path A (booking only); Path B is not yet shown: "
                     + "; ".join(missing) + "."), rows
    return "none", "Neither path yet: the booking criteria do not hold.", rows



def judge(manifest: Manifest, summary: Summary, checks: list[dict[str, Any]] | None,
          baseline: Summary | None = None) -> Judgement:
    """Every verdict on one run and the decision."""
    thresholds, targets, alerts = rules(manifest)
    verdicts: list[Verdict] = []
    findings: list[str] = []
    turned_off = notifications_reason(manifest)
    off = turned_off or "not measured (notifications.enabled: false, or a run from before bookbench measured them)"
    for name, entry in manifest.scenarios.items():
        ran = entry.started_at is not None or entry.counts is not None
        sc = summary.scenarios.get(name)
        # the scenario's own think time, else the task mix's (config.scenarios.Scenario.think)
        pause = entry.definition.get("think_time_s") or manifest.scenario_file.task_mix.get("think_time_s") or {}
        think = float(pause.get("max", 0) or 0)
        mine = scenario_verdicts(name, sc, ran, thresholds, targets, alerts, baseline,
                                 thresholds.stall_default(name, entry.definition, think))
        if ran:  # the real reason: a stop or a fault that left Path B blank, else why the run had it off
            why = entry.notifications_unmeasured or off
            mine = [dataclasses.replace(v, detail=why)
                    if v.metric in NOTIFICATION_METRICS and v.status == "not run" and not v.detail else v for v in mine]
        verdicts += mine
        drifted, found = drift_verdicts(name, sc, thresholds) if ran else ([], [])
        verdicts += drifted
        findings += found
        verdicts += integrity_verdicts(name, entry, ran,
                                       killed=manifest.status == "killed" and manifest.database_role is not None)
        verdicts += samples_file_verdicts(name, sc)
    suites = check_verdicts(checks)
    if turned_off:  # the notifications check of a run without Path B: the same reason as its figures
        suites = [dataclasses.replace(v, detail=turned_off) if v.kind == "notification" and v.status == "not run" else v
                  for v in suites]
    verdicts += suites
    verdicts.append(index_gate(manifest))
    designed = [v for v in verdicts if by_design(v, manifest.scenarios.get(v.scenario), off)]
    found_caveats = caveats(manifest, verdicts)
    if any(v.failed for v in verdicts):
        decision = "NO-GO"
    elif found_caveats or any(v.status == "not run" and v.kind != "notification" for v in verdicts):
        decision = "INCOMPLETE"
    else:
        decision = "GO"
    return Judgement(verdicts, decision, found_caveats, designed, findings)


def matrix(j: Judgement) -> list[Row]:
    """The seed's go/no-go matrix, each row summarising the verdicts it rests on (display only)."""
    rows = []
    for suite, label in CHECK_SUITES:
        v = next(v for v in j.verdicts if v.kind == "check" and v.metric == suite)
        ran = f" ({v.samples - int(v.value or 0)}/{v.samples})" if v.samples else ""
        rows.append(Row(label + ran, v.status, v.detail))
    errs = [v for v in j.verdicts if v.kind == "target" and v.metric == "error_rate"]
    if errs:
        worst = max(errs, key=lambda v: v.value if v.value is not None else -1)
        rows.append(Row(f"Performance tests: error rate <= {format_value('error_rate', worst.limit)}",
                        worst_status(errs), f"worst: {worst.scenario} "
                        f"{format_value('error_rate', worst.value)} of {worst.samples:,} requests"))
    gate = next(v for v in j.verdicts if v.kind == "gate")
    rows.append(Row("Database indexes created", gate.status, gate.detail))
    integ = [v for v in j.verdicts if v.kind == "integrity" and v.metric != "count_mismatch"]
    totals = {m: sum(int(v.value or 0) for v in integ if v.metric == m) for m in INTEGRITY_METRICS[:3]}
    rows.append(Row("No double-booking, no lost booking", worst_status(integ),
                    f"{totals['double_bookings']} overlaps, {totals['lost_bookings']} lost and "
                    f"{totals['phantom_bookings']} phantom bookings" if worst_status(integ) != "not run"
                    else "no database access during the run (--dsn)"))
    return rows



def to_file(j: Judgement) -> VerdictsFile:
    """The judgement as verdicts.json holds it (each verdict with its words)."""
    return VerdictsFile(decision=j.decision, go=j.go, caveats=j.caveats,  # type: ignore[arg-type]
                        verdicts=[VerdictRecord(**asdict(v), text=describe(v)) for v in j.verdicts])
