"""The judge's verdicts and decision as the pages, the terminal and verdicts.json hold them (analysis/judge.py
decides them): one verdict, a display row, the judgement with its questions, and how a verdict is worded."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STATUSES = ("pass", "fail", "no data", "not run", "exempt")
BLOCKING = frozenset({"fail", "no data"})
# how a failed item names the rule it breaks
KIND_LABELS = {"threshold": "threshold", "target": "review target", "alert": "alert rule",
               "notification": "Path B limit"}


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



def worst_status(verdicts: list[Verdict]) -> str:
    statuses = {v.status for v in verdicts}
    for s in ("fail", "no data", "not run", "pass"):
        if s in statuses:
            return s
    return "exempt" if statuses else "not run"

