"""The post-deployment review: targets vs actual, the go/no-go gates, alert rules, and a recommendation
written from the findings of one run (and optionally a baseline run)."""

from __future__ import annotations

from dataclasses import dataclass, field

from bookbench.analysis.judge import Judgement, Row, Verdict, format_value, matrix, path_b, worst_status
from bookbench.artifacts.manifest import Manifest
from bookbench.artifacts.summary import Summary

REVIEW_ROWS = (("p50_ms", "P50 latency", "<"), ("p95_ms", "P95 latency", "<"), ("p99_ms", "P99 latency", "<"),
               ("error_rate", "Error rate", "<"), ("throughput_rps", "Throughput", ">"),
               ("availability", "Availability", ">"))


@dataclass(frozen=True)
class TargetRow:
    """One metric of the targets-vs-actual table: the target, and the judge's target verdict per scenario."""
    metric: str
    label: str
    target: float | None
    target_text: str  # "< 500 ms"
    cells: list[Verdict]  # one per scenario, in the table's order (value, samples, status)
    status: str  # the worst of the cells


@dataclass
class Review:
    decision: str = "NO-GO"
    headline: str = ""
    caveats: list[str] = field(default_factory=list)
    scenarios: list[str] = field(default_factory=list)
    table: list[TargetRow] = field(default_factory=list)
    gates: list[Row] = field(default_factory=list)
    alerts: list[Verdict] = field(default_factory=list)
    recommendation: list[str] = field(default_factory=list)
    # the seed's deployment decision tree: which path the evidence supports, and Path B's criteria
    path: str = "none"
    path_text: str = ""
    path_b: list[Row] = field(default_factory=list)
    # verdicts the run chose not to measure, by reason (Judgement.by_design_groups)
    not_measured: list[tuple[str, list[Verdict]]] = field(default_factory=list)

    @property
    def go(self) -> bool:
        return self.decision == "GO"


def _table(j: Judgement, scenarios: list[str]) -> list[TargetRow]:
    """The seed's targets-vs-actual table: the judge's target verdicts arranged metric x scenario."""
    rows = []
    for metric, label, op in REVIEW_ROWS:
        cells = {v.scenario: v for v in j.of_kind("target") if v.metric == metric}
        if not cells:
            continue
        ordered = [cells[name] for name in scenarios if name in cells]
        target = ordered[0].limit
        rows.append(TargetRow(metric, label, target, f"{op} {format_value(metric, target)}", ordered,
                              worst_status(ordered)))
    return rows


def _recommendation(review: Review, j: Judgement, manifest: Manifest, summary: Summary,
                    baseline: Summary | None) -> list[str]:
    paras = []
    if review.decision == "GO":
        paras.append(f"Go. Every target holds in all {len(review.scenarios)} scenarios and every go/no-go criterion "
                     "passes. Keep the alert rules below armed for the first 24 hours.")
    elif review.decision == "NO-GO":
        paras.append("No-go until these are fixed: " + "; ".join(j.failed_items()) + ".")
    else:
        paras.append("Not enough to sign: nothing failed, but " + "; ".join(review.caveats) + ". Run the full "
                     "scenarios with the checks (`bookbench run` without --quick or --skip-checks) before deciding.")
    measured = {n: sc for n, sc in summary.scenarios.items() if sc.requests}
    if measured:
        worst_name, worst = max(measured.items(), key=lambda kv: kv[1].latency_ms.p95 or 0)
        endpoints = sorted(worst.endpoints.items(), key=lambda kv: -(kv[1].latency_ms.p95 or 0))
        if endpoints and worst.latency_ms.p95:
            (slow, slow_sc), (fast, fast_sc) = endpoints[0], endpoints[-1]
            paras.append(
                f"Where the time goes: the slowest scenario is {worst_name} (P95 {worst.latency_ms.p95:.0f} ms, "
                f"n={worst.requests:,}); within it {slow} has P95 {slow_sc.latency_ms.p95 or 0:.0f} ms "
                f"against {fast_sc.latency_ms.p95 or 0:.0f} ms for {fast}.")
    if manifest.index_set.indexes == []:  # None: not recorded (no database access), which is not "no index"
        paras.append("This run had no performance index. Measure an index set before deciding: "
                     "`bookbench run --index-set recommended` on the same dataset, then compare the two runs.")
    noisy = {n: sc.noise for n, sc in summary.scenarios.items() if sc.noise}
    if noisy:
        paras.append("Treat these figures with care: " + "; ".join(f"{n}: {', '.join(v)}" for n, v in noisy.items())
                     + ". A longer run" + (" (without --quick)" if manifest.quick else
                                          f" (durations x1, not x{manifest.duration_factor:g})"
                                          if manifest.duration_factor < 1 else "")
                     + " gives tighter numbers.")
    if baseline:
        changes = []
        for name, sc in summary.scenarios.items():
            base = baseline.scenarios.get(name)
            if base and base.latency_ms.p95 and sc.latency_ms.p95:
                changes.append(f"{name} P95 {base.latency_ms.p95:.0f} → {sc.latency_ms.p95:.0f} ms, "
                               f"throughput {base.throughput_rps:.1f} → {sc.throughput_rps:.1f} req/s")
        if changes:
            paras.append(f"Against baseline {baseline.run_id}: " + "; ".join(changes) + ".")
    return paras


def build(manifest: Manifest, summary: Summary, j: Judgement, baseline: Summary | None = None) -> Review:
    """The review page's content, every status taken from the judgement."""
    review = Review(decision=j.decision, caveats=j.caveats, scenarios=list(summary.scenarios))
    review.table = _table(j, review.scenarios)
    review.gates = matrix(j)
    review.alerts = j.of_kind("alert")
    review.not_measured = j.by_design_groups()
    total = sum(sc.requests for sc in summary.scenarios.values())
    review.headline = j.headline(total, len(review.scenarios))
    review.path, review.path_text, review.path_b = path_b(j, summary)
    review.recommendation = _recommendation(review, j, manifest, summary, baseline)
    review.recommendation.insert(1 if review.recommendation else 0, review.path_text)
    return review
