"""Re-renders a run folder's reports from files: summary.json, verdicts, report.html and review.html."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from loadtests.scenario_model import AlertRules, ReviewTargets, Thresholds
from reports import analysis, charts, review, verdicts

TEMPLATES = Path(__file__).with_name("templates")


def jinja() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]),
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


@dataclass
class Rendered:
    run_dir: Path
    summary: dict[str, Any]
    verdicts: list[verdicts.Verdict]
    report: Path

    @property
    def go(self) -> bool:
        return verdicts.go(self.verdicts)


def _rules(manifest: dict[str, Any]) -> tuple[Thresholds, ReviewTargets, AlertRules]:
    sf = manifest["scenario_file"]
    return (Thresholds.model_validate(sf["thresholds"]), ReviewTargets.model_validate(sf["review_targets"]),
            AlertRules.model_validate(sf["alert_rules"]))


def _checks(run_dir: Path) -> list[dict[str, Any]] | None:
    path = run_dir / "checks.json"
    return list(json.loads(path.read_text())["results"]) if path.exists() else None


def _charts(summary: dict[str, Any], thresholds: Thresholds) -> dict[str, Any]:
    out: dict[str, Any] = {"latency": {}, "throughput": {}, "distribution": {}}
    for name, sc in summary["scenarios"].items():
        n = sc["requests"]
        out["latency"][name] = charts.latency_over_time(sc["timeseries"], sc.get("warmup_s", 0),
                                                        f"{name}: latency percentiles per second (n={n:,})")
        out["throughput"][name] = charts.throughput_over_time(sc["timeseries"], f"{name}: throughput and errors")
        out["distribution"][name] = charts.distribution(sc["distribution"], f"{name}: latency distribution (n={n:,})")
    out["bars"] = charts.percentile_bars(summary["scenarios"], thresholds.global_.p95_ms)
    return out


def _headline(summary: dict[str, Any], vs: list[verdicts.Verdict]) -> str:
    failed = [v for v in vs if v.failed]
    total = sum(sc["requests"] for sc in summary["scenarios"].values())
    if not failed and any(v.status == "no data" for v in vs):
        return f"NO DATA — {sum(v.status == 'no data' for v in vs)} verdict(s) had no samples ({total:,} requests)"
    if not failed:
        return f"PASS — every threshold holds over {total:,} requests in {len(summary['scenarios'])} scenario(s)"
    first = failed[0]
    return (f"FAIL — {len(failed)} of {len(vs)} thresholds/alerts fail, e.g. {first.scenario} {first.metric} = "
            f"{first.value:.4g} (limit {first.limit:g}, n={first.samples:,})")


def report(run_dir: Path, baseline_dir: Path | None = None) -> Rendered:
    """Analyse the samples, judge them, and write summary.json, verdicts.* and report.html."""
    manifest = json.loads((run_dir / "manifest.json").read_text())
    summary = analysis.analyse_run(run_dir)
    analysis.write_summary(run_dir, summary)
    summary = analysis.read_summary(run_dir)  # what the report shows is exactly what the file says
    thresholds, _, alerts = _rules(manifest)
    baseline = analysis.read_summary(baseline_dir) if baseline_dir else None
    vs = verdicts.evaluate(summary, thresholds, alerts, baseline) + verdicts.integrity(manifest, _checks(run_dir))
    verdicts.write(vs, run_dir)
    html = jinja().get_template("report.html.j2").render(
        manifest=manifest, summary=summary, verdicts=vs, go=verdicts.go(vs), headline=_headline(summary, vs),
        charts=_charts(summary, thresholds), checks=_checks(run_dir), generated=now(), method=summary["method"])
    path = run_dir / "report.html"
    path.write_text(html)
    return Rendered(run_dir, summary, vs, path)


def review_page(run_dir: Path, baseline_dir: Path | None = None) -> tuple[Path, review.Review]:
    """The post-deployment review (review.html) from an analysed run folder."""
    if not (run_dir / "summary.json").exists():
        report(run_dir, baseline_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    summary = analysis.read_summary(run_dir)
    thresholds, targets, alerts = _rules(manifest)
    baseline = analysis.read_summary(baseline_dir) if baseline_dir else None
    vs = verdicts.evaluate(summary, thresholds, alerts, baseline)
    rv = review.build(manifest, summary, targets, vs, _checks(run_dir), baseline)
    html = jinja().get_template("review.html.j2").render(
        manifest=manifest, review=rv, baseline=baseline, alert_rules=alerts, generated=now(),
        method=summary["method"])
    path = run_dir / "review.html"
    path.write_text(html)
    return path, rv


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
