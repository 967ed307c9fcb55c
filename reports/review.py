"""The post-deployment review: targets vs actual, the go/no-go gates, alert rules, and a recommendation
written from the findings of one run (and optionally a baseline run)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loadtests.scenario_model import ReviewTargets
from reports.verdicts import Verdict

REVIEW_ROWS = (("p50_ms", "P50 latency", "<"), ("p95_ms", "P95 latency", "<"), ("p99_ms", "P99 latency", "<"),
               ("error_rate", "Error rate", "<"), ("throughput_rps", "Throughput", ">"),
               ("availability", "Availability", ">"))
_UNITS = {"error_rate": "%", "availability": "%", "throughput_rps": "/s"}


def _fmt(metric: str, value: float) -> str:
    if metric in ("error_rate", "availability"):
        return f"{100 * value:.3g} %"
    if metric == "throughput_rps":
        return f"{value:.1f} req/s"
    return f"{value:.0f} ms"


def _actual(sc: dict[str, Any], metric: str) -> float | None:
    if metric.endswith("_ms"):
        v = sc["latency_ms"].get(metric[:-3])
        return None if v is None else float(v)
    v = sc.get(metric)
    return None if v is None else float(v)


@dataclass
class Review:
    go: bool = False
    headline: str = ""
    scenarios: list[str] = field(default_factory=list)
    table: list[dict[str, Any]] = field(default_factory=list)
    gates: list[dict[str, str]] = field(default_factory=list)
    alerts: list[Verdict] = field(default_factory=list)
    recommendation: list[str] = field(default_factory=list)


def _table(summary: dict[str, Any], targets: ReviewTargets) -> list[dict[str, Any]]:
    rows = []
    for metric, label, op in REVIEW_ROWS:
        target = getattr(targets, metric)
        if target is None:
            continue
        cells = []
        for sc in summary["scenarios"].values():
            value = _actual(sc, metric)
            ok = value is not None and (value <= target if op == "<" else value >= target)
            cells.append({"value": value, "samples": sc["requests"],
                          "status": "no data" if value is None else ("pass" if ok else "fail")})
        status = "fail" if any(c["status"] == "fail" for c in cells) else (
            "pass" if cells and all(c["status"] == "pass" for c in cells) else "no data")
        rows.append({"metric": metric, "label": label, "target": target,
                     "target_text": f"{op} {_fmt(metric, target)}", "cells": cells, "status": status})
    return rows


def _suite_gate(label: str, checks: list[dict[str, Any]] | None, suite: str) -> dict[str, str]:
    mine = [c for c in checks or [] if c["suite"] == suite]
    if not mine:
        return {"label": label, "status": "no data", "evidence": "not run with this load run (bookbench check)"}
    passed = sum(bool(c["passed"]) for c in mine)
    failed = [c["name"] for c in mine if not c["passed"]]
    evidence = f"{passed}/{len(mine)} passed" + (f"; failed: {', '.join(failed)}" if failed else "")
    return {"label": label, "status": "pass" if passed == len(mine) else "fail", "evidence": evidence}


def _gates(manifest: dict[str, Any], summary: dict[str, Any], targets: ReviewTargets,
           checks: list[dict[str, Any]] | None) -> list[dict[str, str]]:
    limit = targets.error_rate if targets.error_rate is not None else 0.001
    worst = max(summary["scenarios"].items(), key=lambda kv: kv[1]["error_rate"], default=None)
    perf_ok = worst is not None and all(sc["error_rate"] <= limit for sc in summary["scenarios"].values())
    perf = {"label": f"Performance tests: error rate <= {100 * limit:g} %", "status": "pass" if perf_ok else "fail",
            "evidence": "no scenario" if worst is None else
            f"worst: {worst[0]} {100 * worst[1]['error_rate']:.3f} % of {worst[1]['requests']:,} requests"}
    idx = manifest["index_set"]
    present = idx.get("indexes") or []
    index_gate = {"label": "Database indexes created", "status": "pass" if present else "fail",
                  "evidence": f"set {idx['name']}: " + (", ".join(i["name"] for i in present) if present
                                                       else "no performance index applied")}
    entries = [e for e in manifest["scenarios"].values() if "audit" in e]
    if entries:
        overlaps = sum(e["audit"]["overlaps"] for e in entries)
        lost = sum(e["reconciliation"]["lost"] for e in entries)
        phantom = sum(e["reconciliation"]["phantom"] for e in entries)
        audit = {"label": "No double-booking, no lost booking",
                 "status": "pass" if overlaps == lost == phantom == 0 else "fail",
                 "evidence": f"{overlaps} overlaps, {lost} lost and {phantom} phantom bookings over "
                             f"{len(entries)} scenario(s)"}
    else:
        audit = {"label": "No double-booking, no lost booking", "status": "no data",
                 "evidence": "no database access during the run (--dsn)"}
    return [_suite_gate("Smoke tests (3/3)", checks, "smoke"), _suite_gate("UAT tests (4/4)", checks, "uat"),
            _suite_gate("Stress test (1 booked, 9 conflicts)", checks, "stress"), perf, index_gate, audit]


def _recommendation(review: Review, manifest: dict[str, Any], summary: dict[str, Any],
                    baseline: dict[str, Any] | None) -> list[str]:
    paras = []
    misses = [f"{row['label']} in {name} is {_fmt(row['metric'], cell['value'])} against {row['target_text']} "
              f"(n={cell['samples']:,})"
              for row in review.table for name, cell in zip(review.scenarios, row["cells"], strict=True)
              if cell["status"] == "fail"]
    gates = [g for g in review.gates if g["status"] != "pass"]
    if review.go:
        paras.append(f"Go. Every target holds in all {len(review.scenarios)} scenarios and every go/no-go criterion "
                     "passes. Keep the alert rules below armed for the first 24 hours.")
    else:
        reasons = misses[:4] + [f"{g['label']}: {g['status']} ({g['evidence']})" for g in gates]
        paras.append("No-go until these are fixed: " + "; ".join(reasons) + ".")
    worst_name, worst = max(summary["scenarios"].items(), key=lambda kv: kv[1]["latency_ms"]["p95"] or 0)
    endpoints = sorted(worst["endpoints"].items(), key=lambda kv: -(kv[1]["latency_ms"]["p95"] or 0))
    if endpoints and worst["latency_ms"]["p95"]:
        slow, fast = endpoints[0], endpoints[-1]
        paras.append(
            f"Where the time goes: the slowest scenario is {worst_name} (P95 {worst['latency_ms']['p95']:.0f} ms, "
            f"n={worst['requests']:,}); within it {slow[0]} has P95 {slow[1]['latency_ms']['p95']:.0f} ms against "
            f"{fast[1]['latency_ms']['p95']:.0f} ms for {fast[0]}.")
    idx = manifest["index_set"]
    if not idx.get("indexes"):
        paras.append("This run had no performance index. Measure an index set before deciding: "
                     "`bookbench run --index-set recommended` on the same dataset, then compare the two runs.")
    noisy = {n: sc["noise"] for n, sc in summary["scenarios"].items() if sc.get("noise")}
    if noisy:
        paras.append("Treat these figures with care: " + "; ".join(f"{n}: {', '.join(v)}" for n, v in noisy.items())
                     + ". A longer run (without --quick) gives tighter numbers.")
    if baseline:
        changes = []
        for name, sc in summary["scenarios"].items():
            base = baseline["scenarios"].get(name)
            if base and base["latency_ms"]["p95"] and sc["latency_ms"]["p95"]:
                changes.append(f"{name} P95 {base['latency_ms']['p95']:.0f} → {sc['latency_ms']['p95']:.0f} ms, "
                               f"throughput {base['throughput_rps']:.1f} → {sc['throughput_rps']:.1f} req/s")
        if changes:
            paras.append(f"Against baseline {baseline['run_id']}: " + "; ".join(changes) + ".")
    return paras


def build(manifest: dict[str, Any], summary: dict[str, Any], targets: ReviewTargets, verdicts: list[Verdict],
          checks: list[dict[str, Any]] | None, baseline: dict[str, Any] | None = None) -> Review:
    review = Review(scenarios=list(summary["scenarios"]))
    review.table = _table(summary, targets)
    review.gates = _gates(manifest, summary, targets, checks)
    review.alerts = [v for v in verdicts if v.kind == "alert"]
    failing = [r["label"] for r in review.table if r["status"] == "fail"]
    failing += [g["label"] for g in review.gates if g["status"] != "pass"]
    failing += [f"alert {v.metric} in {v.scenario}" for v in review.alerts if v.failed]
    review.go = not failing
    total = sum(sc["requests"] for sc in summary["scenarios"].values())
    review.headline = (f"all targets met over {total:,} requests in {len(review.scenarios)} scenarios" if review.go
                       else f"{len(failing)} item(s) not met: {', '.join(failing[:5])}")
    review.recommendation = _recommendation(review, manifest, summary, baseline)
    return review
