"""The judge's verdicts on a scenario's figures: each threshold, review target and alert rule of scenarios.yaml
(Path B's limits and the stall limit among them), and the latency drift against its threshold, read from the
figures summary.json stores."""

from __future__ import annotations

from typing import Any

from bookbench.analysis import drift
from bookbench.analysis.verdict import Verdict
from bookbench.artifacts.summary import ScenarioSummary, Summary
from bookbench.config.scenarios import AlertRules, Limits, ReviewTargets, Thresholds

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



def scenario_verdicts(name: str, sc: ScenarioSummary | None, ran: bool, thresholds: Thresholds,
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


def drift_verdicts(name: str, sc: ScenarioSummary | None, thresholds: Thresholds) -> tuple[list[Verdict], list[str]]:
    """The P95's drift per hour as summary.json stores it, judged by drift.assess (the run page shows the same): a
    verdict when scenarios.yaml sets thresholds.p95_drift_per_hour (failed only when the whole interval lies above
    it), else a finding when drift beyond the default threshold is shown. A scenario with less than
    drift.JUDGED_FROM_S of steady state has no stored slope, so it is never judged on drift."""
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

