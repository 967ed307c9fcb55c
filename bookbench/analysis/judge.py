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
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from bookbench.analysis import drift
from bookbench.artifacts.manifest import AS_FOUND, Manifest, ScenarioEntry, notifications_off
from bookbench.artifacts.summary import ScenarioSummary, Summary
from bookbench.artifacts.verdicts import VerdictRecord, VerdictsFile
from bookbench.config.scenarios import AlertRules, Limits, ReviewTargets, Thresholds

STATUSES = ("pass", "fail", "no data", "not run", "exempt")
BLOCKING = frozenset({"fail", "no data"})

# metric -> (where in a scenario summary, True if the value must stay at or below the limit)
METRICS: dict[str, tuple[tuple[str, ...], bool]] = {
    "p50_ms": (("latency_ms", "p50"), True),
    "p95_ms": (("latency_ms", "p95"), True),
    "p99_ms": (("latency_ms", "p99"), True),
    "error_rate": (("error_rate",), True),
    "throughput_rps": (("throughput_rps",), False),
    "availability": (("availability",), False),
    # Path B (summary's `notifications`, present when the run measured them)
    "sms_p95_s": (("notifications", "sms", "delay_s", "p95"), True),
    "notifications_lost": (("notifications", "lost"), True),
    # the longest time inside the load window in which no request completed (summary's `stall`)
    "max_stall_s": (("stall", "longest_s"), True),
}
NOTIFICATION_METRICS = frozenset({"sms_p95_s", "notifications_lost"})
# the suites' names; the counts a page shows next to them come from the checks that ran (matrix())
CHECK_SUITES = (("smoke", "Smoke tests"), ("uat", "UAT tests"), ("stress", "Stress test"),
                ("preflight", "Preflight: one booking function, advisory lock, READ COMMITTED, isolation"))
INTEGRITY_METRICS = ("double_bookings", "lost_bookings", "phantom_bookings", "count_mismatch")
# how a failed item names the rule it breaks
KIND_LABELS = {"threshold": "threshold", "target": "review target", "alert": "alert rule",
               "notification": "Path B limit"}
NO_DATABASE = "no database access during the run (--dsn)"
# the commands that start runs with notifications off (read from an old manifest's command line)
SCHEDULED = frozenset({"compare", "calibrate", "sweep", "capacity"})


@dataclass(frozen=True)
class Verdict:
    kind: str  # threshold | notification | target | alert | integrity | check | gate
    scenario: str  # a scenario name, "checks" or "run"
    metric: str
    value: float | None
    limit: float | None
    status: str  # one of STATUSES
    samples: int
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.status in BLOCKING


@dataclass(frozen=True)
class Row:
    """One display row of a decision table (the go/no-go matrix, Path B's criteria): what the pages list."""
    label: str
    status: str  # one of STATUSES
    evidence: str


@dataclass(frozen=True)
class Judgement:
    verdicts: list[Verdict]
    decision: str  # GO | NO-GO | INCOMPLETE
    caveats: list[str] = field(default_factory=list)  # what was not run or not in full, worded for the page
    # "not run" verdicts the run chose not to measure (notifications off, no --dsn, checks skipped), each with its
    # reason as detail: pages fold them into one line instead of a row each in the warning colour
    by_design: list[Verdict] = field(default_factory=list)
    # what the run revealed that no rule of scenarios.yaml judges (a soak's latency drift with no drift threshold
    # set), worded for the page: shown, never a reason for the decision
    findings: list[str] = field(default_factory=list)

    @property
    def go(self) -> bool:
        return self.decision == "GO"

    @property
    def failures(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.failed]

    def of_kind(self, *kinds: str) -> list[Verdict]:
        return [v for v in self.verdicts if v.kind in kinds]

    def scenario_status(self, scenario: str) -> str:
        """"fail" if any of the scenario's verdicts failed, "not run" if none could be taken, else "pass"."""
        mine = [v for v in self.verdicts if v.scenario == scenario]
        if any(v.failed for v in mine):
            return "fail"
        if mine and all(v.status == "not run" for v in mine):
            return "not run"
        return "pass"

    def failures_first(self) -> list[Verdict]:
        """The verdicts for a table: failed ones first, then the ones not run, then the rest, each in order."""
        rank = {"fail": 0, "no data": 0, "not run": 1}
        return sorted(self.verdicts, key=lambda v: rank.get(v.status, 2))

    def failed_groups(self) -> list[list[Verdict]]:
        """The failed verdicts by figure: a P95 over its threshold, its review target and its alert rule is one
        group (one figure, three rules), so that every page and the terminal list it once."""
        groups: dict[tuple[Any, ...], list[Verdict]] = {}
        for v in self.failures:
            groups.setdefault((v.scenario, v.metric, v.value, v.status, v.detail), []).append(v)
        return list(groups.values())

    def failed_items(self) -> list[str]:
        """Each failed figure once, in words, naming every limit it breaks."""
        return [describe_item(vs) for vs in self.failed_groups()]

    def measured(self) -> list[Verdict]:
        """The verdicts for the verdicts table: all but those not measured by design (shown folded)."""
        return [v for v in self.failures_first() if v not in self.by_design]

    def by_design_groups(self) -> list[tuple[str, list[Verdict]]]:
        """The verdicts not measured by design, by reason (the reason's "not measured" lead-in dropped: the line that
        shows them says it once)."""
        groups: dict[str, list[Verdict]] = {}
        for v in self.by_design:
            reason = v.detail.removeprefix("not measured: ").removeprefix("not measured ") or "not run"
            groups.setdefault(reason, []).append(v)
        return list(groups.items())

    def headline(self, requests: int, scenarios: int, listed: int = 3) -> str:
        """The decision in one sentence; `listed`: how many failed items it names (0: the page lists them)."""
        failures = self.failures
        if failures:
            items = self.failed_items()
            head = f"{len(failures)} of {len(self.verdicts)} verdicts fail"
            if not listed:
                return f"{head} ({len(items)} failed item(s)) over {requests:,} requests"
            more = f" and {len(items) - listed} more" if len(items) > listed else ""
            return f"{head}: {'; '.join(items[:listed])}{more}"
        if self.caveats:
            return f"nothing failed over {requests:,} requests, but not complete: {'; '.join(self.caveats)}"
        return f"every verdict holds over {requests:,} requests in {scenarios} scenario(s)"


def describe(v: Verdict) -> str:
    """One verdict as a short phrase for headlines and recommendations."""
    where = "" if v.scenario in ("checks", "run") else f"{v.scenario} "
    if v.detail:
        return f"{where}{v.metric}: {v.detail}"
    if v.value is None:
        return f"{where}{v.metric}: {v.status}"
    return f"{where}{v.metric} = {format_value(v.metric, v.value)} (limit {format_value(v.metric, v.limit)}, " \
           f"n={v.samples:,})"


def describe_item(verdicts: list[Verdict]) -> str:
    """Verdicts on one figure (same scenario, metric and value) as one phrase naming each rule's limit:
    "ramp_up p95_ms = 678 ms (threshold 500 ms, review target 500 ms; n=1,234)"."""
    first = verdicts[0]
    if first.detail or first.value is None:
        return describe(first)
    where = "" if first.scenario in ("checks", "run") else f"{first.scenario} "
    limits = ", ".join(f"{KIND_LABELS.get(v.kind, v.kind)} {format_value(v.metric, v.limit)}" for v in verdicts)
    return f"{where}{first.metric} = {format_value(first.metric, first.value)} ({limits}; n={first.samples:,})"


def format_value(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    if metric == "throughput_drop":
        return f"{100 * value:.1f} %" if value >= 0 else f"none (throughput {1 - value:.2f}x the baseline)"
    if metric in ("error_rate", "availability"):
        return f"{100 * value:.3g} %"
    if metric == "throughput_rps":
        return f"{value:.1f} req/s"
    if metric.endswith("_per_hour"):
        return f"{100 * value:+.1f} %/h"
    if metric.endswith("_ms"):
        return f"{value:.0f} ms"
    if metric.endswith("_s"):
        return f"{value:.1f} s"
    return f"{value:g}"


def metric_value(scenario: ScenarioSummary, metric: str) -> float | None:
    node: Any = scenario
    for key in METRICS[metric][0]:
        node = getattr(node, key, None)
    return None if node is None else float(node)


def effective_limits(thresholds: Thresholds, scenario: str) -> dict[str, float]:
    """Global limits overridden by the scenario's; an explicit null in per_scenario removes a limit."""
    merged = {k: v for k, v in thresholds.global_.model_dump().items() if v is not None}
    override: Limits | None = thresholds.per_scenario.get(scenario)
    if override is not None:
        for key in override.model_fields_set:
            value = getattr(override, key)
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
    return merged


def exempt(thresholds: Thresholds, scenario: str, metric: str) -> bool:
    """scenarios.yaml exempts a scenario from a metric by a null per-scenario threshold (single has no throughput
    floor); the review's target for that metric then does not apply to it either."""
    override = thresholds.per_scenario.get(scenario)
    return override is not None and metric in override.model_fields_set and getattr(override, metric) is None


def _limit(kind: str, scenario: str, metric: str, sc: ScenarioSummary | None, limit: float,
           ran: bool) -> Verdict:
    if not ran:
        return Verdict(kind, scenario, metric, None, limit, "not run", 0)
    if metric in NOTIFICATION_METRICS:
        return _notification_limit(kind, scenario, metric, sc, limit)
    if metric == "max_stall_s":
        return _stall_limit(kind, scenario, sc, limit)
    n = sc.requests if sc else 0
    value = metric_value(sc, metric) if sc else None
    if value is None or n == 0:
        return Verdict(kind, scenario, metric, value, limit, "no data", n)
    # inclusive, so that a limit of 0 (error_rate: 0, "no error allowed") can be met
    ok = value <= limit if METRICS[metric][1] else value >= limit
    return Verdict(kind, scenario, metric, value, limit, "pass" if ok else "fail", n)


def _notification_limit(kind: str, scenario: str, metric: str, sc: ScenarioSummary | None,
                        limit: float) -> Verdict:
    """A Path B limit; "not run" (never "no data") when the run did not measure notifications: that leaves Path B
    without evidence, which the review says, but does not make a booking-only run incomplete."""
    notes = sc.notifications if sc else None
    if not sc or not notes:
        return Verdict(kind, scenario, metric, None, limit, "not run", 0)  # judge() words the reason
    n = notes.sms.delay_s.n if metric == "sms_p95_s" else notes.queued
    value = metric_value(sc, metric)
    if value is None:
        return Verdict(kind, scenario, metric, None, limit, "not run", n, "no booking acknowledged")
    return Verdict(kind, scenario, metric, value, limit, "pass" if value <= limit else "fail", n)


def _clock(seconds: float) -> str:
    """Seconds since the scenario's first request as mm:ss (00:17)."""
    whole = int(seconds)
    return f"{whole // 60:02d}:{whole % 60:02d}"


def _stall_limit(kind: str, scenario: str, sc: ScenarioSummary | None, limit: float) -> Verdict:
    """A stall is a verdict of its own: "no request completed for 15.1 s at 00:17-00:32" (times since the first
    request), however well the percentiles of the requests around it look."""
    stall = sc.stall if sc else None
    n = sc.requests if sc else 0
    if not stall:
        # no requests at all is "no data" like every other limit; requests that all ended in the warm-up leave
        # no load window to watch (a scenario stopped that early): not measured, never a pass
        return Verdict(kind, scenario, "max_stall_s", None, limit, "not run" if n else "no data", n,
                       "no load window after the warm-up" if n else "no request completed")
    longest = stall.longest_s
    over = [g for g in stall.gaps if g.length_s > limit]
    detail = f"no request completed for {longest:.1f} s at {_clock(stall.from_s)}-{_clock(stall.to_s)}"
    if len(over) > 1:
        detail += f" ({len(over) - 1} more stall(s) over {limit:g} s)"
    elif longest <= limit:
        detail = f"longest time without a completed request: {longest:.1f} s at {_clock(stall.from_s)}"
    return Verdict(kind, scenario, "max_stall_s", longest, limit, "pass" if longest <= limit else "fail", n, detail)


def _samples_file(name: str, sc: ScenarioSummary | None) -> list[Verdict]:
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


def _scenario_verdicts(name: str, sc: ScenarioSummary | None, ran: bool, thresholds: Thresholds,
                       targets: ReviewTargets, alerts: AlertRules, baseline: Summary | None,
                       stall: float | None = None) -> list[Verdict]:
    """`stall`: the stall limit when scenarios.yaml names none (Thresholds.stall_default)."""
    out = [_limit("notification" if metric in NOTIFICATION_METRICS else "threshold", name, metric, sc, float(limit),
                  ran)
           for metric, limit in effective_limits(thresholds, name).items()]
    if stall is not None:  # on unless scenarios.yaml names the limit (then it is one of the limits above) or nulls it
        out.append(_limit("threshold", name, "max_stall_s", sc, stall, ran))
    for metric, target in targets.model_dump().items():
        if target is None:
            continue
        if exempt(thresholds, name, metric):
            out.append(Verdict("target", name, metric, metric_value(sc, metric) if sc else None, float(target),
                               "exempt", sc.requests if sc else 0, "exempt by scenarios.yaml thresholds"))
        else:
            out.append(_limit("target", name, metric, sc, float(target), ran))
    # alert rules fire when the value goes beyond the rule; "pass" means the alert stays quiet
    out.append(_limit("alert", name, "p95_ms", sc, alerts.p95_ms, ran))
    out.append(_limit("alert", name, "error_rate", sc, alerts.error_rate, ran))
    base = baseline.scenarios.get(name) if baseline else None
    if ran and sc and base and base.throughput_rps:
        drop = 1 - sc.throughput_rps / base.throughput_rps
        status = "pass" if drop <= alerts.throughput_drop else "fail"
        out.append(Verdict("alert", name, "throughput_drop", drop, alerts.throughput_drop, status, sc.requests))
    return out


def _drift(name: str, sc: ScenarioSummary | None, thresholds: Thresholds) -> tuple[list[Verdict], list[str]]:
    """The P95's drift per hour as drift.assess finds it (the run page shows the same): a verdict when
    scenarios.yaml sets thresholds.p95_drift_per_hour (failed only when the whole interval lies above it), else a
    finding when drift beyond the default threshold is shown. A scenario with less than drift.JUDGED_FROM_S of
    steady state has no slope (assess does not fit it), so it is never judged on drift."""
    if sc is None:
        return [], []
    limit = thresholds.p95_drift_per_hour
    found = drift.assess(sc, thresholds).latency
    rel = found.slope.relative() if found.slope else None
    if rel is None:
        return [], []
    if limit is None:
        return [], ([f"{name}: latency drift, {found.words()}"] if found.verdict == drift.DRIFT else [])
    status = "fail" if found.verdict == drift.DRIFT else "pass"
    return [Verdict("threshold", name, "p95_drift_per_hour", rel[0], limit, status, sc.requests, found.words())], []


def _integrity(name: str, entry: ScenarioEntry, ran: bool, killed: bool = False) -> list[Verdict]:
    """`killed`: the run died (SIGKILL, a reboot) after it had its database: its audit never came."""
    """What must be exactly zero or equal whatever the thresholds say."""
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


def _checks(checks: list[dict[str, Any]] | None) -> list[Verdict]:
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


def _index_gate(manifest: Manifest) -> Verdict:
    idx = manifest.index_set
    present = idx.indexes
    if present is None:
        return Verdict("gate", "run", "indexes_created", None, 1, "not run", 0, f"indexes {index_set_label(manifest)}")
    names = ", ".join(i.name for i in present)
    what = f"set {idx.name}" if idx.applied and idx.name != AS_FOUND else "indexes as found"
    return Verdict("gate", "run", "indexes_created", len(present), 1, "pass" if present else "fail", len(present),
                   f"{what}: {names or 'no performance index'}")


def index_set_label(manifest: Manifest) -> str:
    """What the run measured, index-wise, for page headers: the set bookbench applied, or the indexes as found (a
    database bookbench did not create, no set named); without database access nothing was applied or recorded,
    whatever name an older run folder wrote."""
    idx = manifest.index_set
    if idx.indexes is None:
        return "as found, not recorded (no database access: --dsn)"
    if idx.applied and idx.name != AS_FOUND:
        return idx.name
    return f"as found ({len(idx.indexes)} performance index(es))"


def notifications_reason(manifest: Manifest) -> str | None:
    """Why the run left notifications off: as the run recorded it, or, for a run folder from before that record, as
    its target and command line say. None: they were on (or an old run folder that does not say)."""
    if manifest.notifications_off:
        return manifest.notifications_off
    command = manifest.command
    scheduled = (len(command) > 1 and command[1] in SCHEDULED) or manifest.round is not None
    return notifications_off(manifest.target.url != "self-hosted", command, scheduled, True)


def _by_design(v: Verdict, entry: ScenarioEntry | None, off: str) -> bool:
    """A verdict the run chose not to measure: Path B turned off, no database access, checks skipped; never one a
    fault or a stop left blank (those stay in plain sight)."""
    if v.status != "not run":
        return False
    if v.scenario in ("checks", "run"):
        return True
    if entry is None:
        return False
    if v.metric in NOTIFICATION_METRICS:
        return entry.notifications_unmeasured is None and v.detail == off
    return v.kind == "integrity" and v.detail == (entry.integrity_unmeasured or NO_DATABASE)


def rules(manifest: Manifest) -> tuple[Thresholds, ReviewTargets, AlertRules]:
    sf = manifest.scenario_file
    return (Thresholds.model_validate(sf.thresholds), ReviewTargets.model_validate(sf.review_targets),
            AlertRules.model_validate(sf.alert_rules))


def _caveats(manifest: Manifest, verdicts: Iterable[Verdict]) -> list[str]:
    out = []
    if manifest.quick:
        out.append(f"quick run (durations x{manifest.duration_factor:g})")
    elif manifest.duration_factor < 1:
        # shortened is shortened, whichever option did it (compare's --duration-factor, a sweep's)
        out.append(f"shortened run (durations x{manifest.duration_factor:g})")
    status = manifest.status
    if status in ("interrupted", "failed", "running", "killed"):
        out.append(f"run {status}" + (f": {manifest.reason}" if manifest.reason else ""))
    not_run = sorted({v.scenario for v in verdicts if v.kind == "threshold" and v.status == "not run"})
    if not_run:
        out.append(f"scenario(s) not run: {', '.join(not_run)}")
    skipped = [v.metric for v in verdicts if v.kind == "check" and v.status == "not run"]
    if skipped:
        out.append(f"checks not run: {', '.join(skipped)}")
    if any(v.kind == "integrity" and v.metric == "double_bookings" and v.status == "not run" and v.samples
           for v in verdicts):
        out.append("double-booking audit not run (no --dsn)")
    return out


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
        think = float(manifest.scenario_file.task_mix.get("think_time_s", {}).get("max", 0) or 0)
        mine = _scenario_verdicts(name, sc, ran, thresholds, targets, alerts, baseline,
                                  thresholds.stall_default(name, entry.definition, think))
        if ran:  # the real reason: a stop or a fault that left Path B blank, else why the run had it off
            why = entry.notifications_unmeasured or off
            mine = [dataclasses.replace(v, detail=why)
                    if v.metric in NOTIFICATION_METRICS and v.status == "not run" and not v.detail else v for v in mine]
        verdicts += mine
        drifted, found = _drift(name, sc, thresholds) if ran else ([], [])
        verdicts += drifted
        findings += found
        verdicts += _integrity(name, entry, ran,
                               killed=manifest.status == "killed" and manifest.database_role is not None)
        verdicts += _samples_file(name, sc)
    suites = _checks(checks)
    if turned_off:  # the notifications check of a run without Path B: the same reason as its figures
        suites = [dataclasses.replace(v, detail=turned_off) if v.kind == "notification" and v.status == "not run" else v
                  for v in suites]
    verdicts += suites
    verdicts.append(_index_gate(manifest))
    by_design = [v for v in verdicts if _by_design(v, manifest.scenarios.get(v.scenario), off)]
    caveats = _caveats(manifest, verdicts)
    if any(v.failed for v in verdicts):
        decision = "NO-GO"
    elif caveats or any(v.status == "not run" and v.kind != "notification" for v in verdicts):
        decision = "INCOMPLETE"
    else:
        decision = "GO"
    return Judgement(verdicts, decision, caveats, by_design, findings)


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


def worst_status(verdicts: list[Verdict]) -> str:
    statuses = {v.status for v in verdicts}
    for s in ("fail", "no data", "not run", "pass"):
        if s in statuses:
            return s
    return "exempt" if statuses else "not run"


def to_file(j: Judgement) -> VerdictsFile:
    """The judgement as verdicts.json holds it (each verdict with its words)."""
    return VerdictsFile(decision=j.decision, go=j.go, caveats=j.caveats,  # type: ignore[arg-type]
                        verdicts=[VerdictRecord(**asdict(v), text=describe(v)) for v in j.verdicts])
