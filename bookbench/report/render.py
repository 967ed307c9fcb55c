"""Re-renders a run folder's reports from files: summary.json, verdicts, report.html and review.html."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from bookbench.analysis import judge, review
from bookbench.analysis import summarize as analysis
from bookbench.artifacts import verdicts
from bookbench.report import charts
from bookbench.spec.scenarios import Thresholds

TEMPLATES = Path(__file__).with_name("templates")


def jinja() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]),
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


@dataclass
class Rendered:
    run_dir: Path
    summary: dict[str, Any]
    judgement: judge.Judgement
    report: Path

    @property
    def go(self) -> bool:
        return self.judgement.go


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


def judged(run_dir: Path, baseline_dir: Path | None = None) -> tuple[dict[str, Any], dict[str, Any],
                                                                     judge.Judgement]:
    """(manifest, summary, judgement) of an analysed run folder: the one place pages get their decision from."""
    manifest = json.loads((run_dir / "manifest.json").read_text())
    summary = analysis.read_summary(run_dir)
    baseline = analysis.read_summary(baseline_dir) if baseline_dir else None
    return manifest, summary, judge.judge(manifest, summary, _checks(run_dir), baseline)


def report(run_dir: Path, baseline_dir: Path | None = None) -> Rendered:
    """Analyse the samples, judge them, and write summary.json, verdicts.* and report.html."""
    analysis.write_summary(run_dir, analysis.analyse_run(run_dir))
    # what the report shows is exactly what the file says
    manifest, summary, j = judged(run_dir, baseline_dir)
    verdicts.write(j, run_dir)
    total = sum(sc["requests"] for sc in summary["scenarios"].values())
    html = jinja().get_template("report.html.j2").render(
        manifest=manifest, summary=summary, j=j, headline=j.headline(total, len(summary["scenarios"])),
        fmt=judge.format_value, charts=_charts(summary, judge.rules(manifest)[0]), checks=_checks(run_dir),
        generated=now(), method=summary["method"])
    path = run_dir / "report.html"
    path.write_text(html)
    return Rendered(run_dir, summary, j, path)


def review_page(run_dir: Path, baseline_dir: Path | None = None) -> tuple[Path, review.Review]:
    """The post-deployment review (review.html) from an analysed run folder."""
    if not (run_dir / "summary.json").exists():
        report(run_dir, baseline_dir)
    manifest, summary, j = judged(run_dir, baseline_dir)
    baseline = analysis.read_summary(baseline_dir) if baseline_dir else None
    rv = review.build(manifest, summary, j, baseline)
    html = jinja().get_template("review.html.j2").render(
        manifest=manifest, review=rv, baseline=baseline, alert_rules=judge.rules(manifest)[2], fmt=judge.format_value,
        generated=now(), method=summary["method"])
    path = run_dir / "review.html"
    path.write_text(html)
    return path, rv


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
