"""Renders compare.html from compare.json and the runs' own summaries, plus the best variant's review."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bookbench.report import charts, render


def _summary(run_dir: Path) -> dict[str, Any]:
    return dict(json.loads((run_dir / "summary.json").read_text()))


def compare_page(folder: Path, result: dict[str, Any]) -> Path:
    """compare.html: headline, per-scenario ratios with intervals, overlaid charts, plans, index findings."""
    first_runs = {s: Path(runs[0]) for s, runs in result["runs"].items()}
    summaries = {s: _summary(d) for s, d in first_runs.items()}
    figures: dict[str, dict[str, str]] = {"cdf": {}, "p95": {}}
    for name in result["scenarios"]:
        figures["cdf"][name] = charts.overlaid_cdfs(
            {s: summ["scenarios"][name]["distribution"]["cdf"] for s, summ in summaries.items()},
            f"{name}: latency CDF per index set (first run of each)")
        figures["p95"][name] = charts.overlaid_p95(
            {s: summ["scenarios"][name]["timeseries"] for s, summ in summaries.items()},
            f"{name}: P95 per second")
    review = None
    if result.get("best"):
        best_run = first_runs[result["best"]]
        path, rv = render.review_page(best_run, first_runs[result["baseline"]])
        review = {"decision": rv.decision, "caveats": rv.caveats, "headline": rv.headline,
                  "recommendation": rv.recommendation,
                  "link": os.path.relpath(path, folder)}
    links = {s: [os.path.relpath(Path(d) / "report.html", folder) for d in runs] for s, runs in result["runs"].items()}
    html = render.jinja().get_template("compare.html.j2").render(
        r=result, figures=figures, review=review, links=links, generated=render.now(),
        method="paired rounds: Student-t interval of the mean log ratio, variance from the rounds pooled with this "
               "machine's calibration, never below the within-run 1-second block bootstrap")
    page = folder / "compare.html"
    page.write_text(html)
    return page
