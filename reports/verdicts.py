"""Thresholds and alert rules from scenarios.yaml applied to a summary: each with value, limit and status."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from loadtests.scenario_model import AlertRules, Limits, Thresholds

VERDICTS_FORMAT_VERSION = 1

# metric -> (where in a scenario summary, "max" if the value must stay below the limit, unit)
METRICS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "p50_ms": (("latency_ms", "p50"), "max", "ms"),
    "p95_ms": (("latency_ms", "p95"), "max", "ms"),
    "p99_ms": (("latency_ms", "p99"), "max", "ms"),
    "error_rate": (("error_rate",), "max", ""),
    "throughput_rps": (("throughput_rps",), "min", "req/s"),
}


@dataclass(frozen=True)
class Verdict:
    kind: str  # threshold | alert
    scenario: str
    metric: str
    value: float | None
    limit: float
    status: str  # pass | fail | no data
    samples: int

    @property
    def failed(self) -> bool:
        return self.status == "fail"


def metric_value(scenario: dict[str, Any], metric: str) -> float | None:
    node: Any = scenario
    for key in METRICS[metric][0]:
        node = node.get(key) if isinstance(node, dict) else None
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


def _judge(kind: str, scenario: str, metric: str, value: float | None, limit: float, samples: int,
           must_stay_below: bool) -> Verdict:
    if value is None or samples == 0:
        return Verdict(kind, scenario, metric, value, limit, "no data", samples)
    # inclusive, so that a limit of 0 (error_rate: 0, "no error allowed") can be met
    ok = value <= limit if must_stay_below else value >= limit
    return Verdict(kind, scenario, metric, value, limit, "pass" if ok else "fail", samples)


def evaluate(summary: dict[str, Any], thresholds: Thresholds, alerts: AlertRules,
             baseline: dict[str, Any] | None = None) -> list[Verdict]:
    out: list[Verdict] = []
    for name, sc in summary["scenarios"].items():
        n = int(sc["requests"])
        for metric, limit in effective_limits(thresholds, name).items():
            out.append(_judge("threshold", name, metric, metric_value(sc, metric), float(limit), n,
                              METRICS[metric][1] == "max"))
        # alert rules fire when the value goes beyond the rule; "pass" means the alert stays quiet
        out.append(_judge("alert", name, "p95_ms", metric_value(sc, "p95_ms"), alerts.p95_ms, n, True))
        out.append(_judge("alert", name, "error_rate", sc["error_rate"], alerts.error_rate, n, True))
        base = (baseline or {}).get("scenarios", {}).get(name)
        if base and base.get("throughput_rps"):
            drop = 1 - float(sc["throughput_rps"]) / float(base["throughput_rps"])
            out.append(_judge("alert", name, "throughput_drop", drop, alerts.throughput_drop, n, True))
    return out


def integrity(manifest: dict[str, Any], checks: list[dict[str, Any]] | None) -> list[Verdict]:
    """What must be exactly zero or equal whatever the thresholds say: double-bookings, lost and phantom
    bookings, request counts that disagree, failed pre-run checks."""
    out: list[Verdict] = []

    def zero(scenario: str, metric: str, value: float, samples: int) -> None:
        out.append(Verdict("integrity", scenario, metric, value, 0, "pass" if value == 0 else "fail", samples))

    for name, entry in manifest["scenarios"].items():
        counts = entry.get("counts") or {}
        n = int(counts.get("samples") or 0)
        if "audit" in entry:
            zero(name, "double_bookings", entry["audit"]["overlaps"], n)
        if "reconciliation" in entry:
            zero(name, "lost_bookings", entry["reconciliation"]["lost"], n)
            zero(name, "phantom_bookings", entry["reconciliation"]["phantom"], n)
        if counts:
            others = [c for c in (counts.get("locust"), counts.get("service")) if c is not None]
            zero(name, "count_mismatch", max((abs(n - c) for c in others), default=0), n)
    if checks is not None:
        failed = [c for c in checks if not c["passed"]]
        zero("checks", "failed_checks", len(failed), len(checks))
    return out


def go(verdicts: list[Verdict]) -> bool:
    """GO only when nothing failed and every verdict had data: a scenario without samples is not a pass."""
    return not any(v.failed or v.status == "no data" for v in verdicts)


def write(verdicts: list[Verdict], run_dir: Path) -> None:
    data = {"format_version": VERDICTS_FORMAT_VERSION, "go": go(verdicts), "verdicts": [asdict(v) for v in verdicts]}
    (run_dir / "verdicts.json").write_text(json.dumps(data, indent=1))
    suite = ET.Element("testsuite", name="bookbench thresholds", tests=str(len(verdicts)),
                       failures=str(sum(v.failed for v in verdicts)))
    for v in verdicts:
        case = ET.SubElement(suite, "testcase", classname=f"bookbench.{v.kind}.{v.scenario}", name=v.metric)
        text = f"{v.metric} = {v.value} (limit {v.limit}, {v.samples} samples): {v.status}"
        if v.failed:
            ET.SubElement(case, "failure", message=text).text = text
        elif v.status == "no data":
            ET.SubElement(case, "skipped", message=text)
        else:
            ET.SubElement(case, "system-out").text = text
    ET.ElementTree(suite).write(run_dir / "verdicts.junit.xml", encoding="utf-8", xml_declaration=True)
