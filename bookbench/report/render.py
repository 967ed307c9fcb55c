"""HTML pages from the analysis's models (jinja2 templates shipped in the package): rendering only."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from bookbench.analysis import judge, review
from bookbench.analysis.inference import DEFAULT_RUN_SD
from bookbench.artifacts import pages
from bookbench.artifacts.manifest import Manifest
from bookbench.artifacts.summary import Summary
from bookbench.config.scenarios import Thresholds
from bookbench.report import charts

TEMPLATES = Path(__file__).with_name("templates")


def jinja() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["when"] = when
    # the spread an uncalibrated comparison assumes: the page says the value the analysis used, not a copy
    env.globals["default_run_sd"] = DEFAULT_RUN_SD
    env.globals["index_set_label"] = judge.index_set_label
    return env


def when(iso: str) -> str:
    """An ISO timestamp as a reader wants it: "2026-11-23 14:00:11 UTC" (no microseconds, no offset)."""
    try:
        stamp = dt.datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return str(iso)
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(dt.UTC)
    return stamp.strftime("%Y-%m-%d %H:%M:%S UTC")


def _charts(summary: Summary, thresholds: Thresholds) -> dict[str, Any]:
    """The page's SVG charts by kind, then scenario (the percentile bars: one chart for every scenario)."""
    out: dict[str, Any] = {"latency": {}, "throughput": {}, "distribution": {}}
    for name, sc in summary.scenarios.items():
        n = sc.requests
        out["latency"][name] = charts.latency_over_time(
            sc.timeseries, sc.warmup_s, f"{name}: latency percentiles per second (n={n:,})",
            judge.effective_limits(thresholds, name).get("p95_ms"))
        out["throughput"][name] = charts.throughput_over_time(sc.timeseries, f"{name}: throughput and errors")
        out["distribution"][name] = charts.distribution(sc.distribution, f"{name}: latency distribution (n={n:,})",
                                                        sc.latency_ms.p95)
        if sc.notifications:
            out.setdefault("backlog", {})[name] = charts.backlog_over_time(
                sc.notifications, f"{name}: notification backlog (outbox rows not yet delivered)")
    out["bars"] = charts.percentile_bars(summary.scenarios, thresholds.global_.p95_ms)
    return out


def report_page(run_dir: Path, manifest: Manifest, summary: Summary, j: judge.Judgement,
                checks: list[dict[str, Any]] | None) -> Path:
    total = sum(sc.requests for sc in summary.scenarios.values())
    html = jinja().get_template("report.html.j2").render(
        # the page lists each failed item under the banner: the banner's sentence only counts them
        manifest=manifest, summary=summary, j=j, headline=j.headline(total, len(summary.scenarios), listed=0),
        fmt=judge.format_value, charts=_charts(summary, judge.rules(manifest)[0]), checks=checks,
        generated=now(), method=summary.method)
    return write_page(run_dir / "report.html", html)


def review_html(run_dir: Path, manifest: Manifest, rv: review.Review, baseline: Summary | None,
                method: str) -> Path:
    html = jinja().get_template("review.html.j2").render(
        manifest=manifest, review=rv, baseline=baseline, alert_rules=judge.rules(manifest)[2], fmt=judge.format_value,
        generated=now(), method=method)
    return write_page(run_dir / "review.html", html)


def write_page(path: Path, html: str) -> Path:
    return pages.write(path, html)


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
