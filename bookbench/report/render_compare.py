"""compare.html from compare.json, the first run of each variant's summary and the best variant's review."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bookbench.analysis import judge, wording
from bookbench.artifacts import manifest as manifest_file
from bookbench.report import charts, render


def compare_page(folder: Path, result: dict[str, Any], summaries: dict[str, dict[str, Any]],
                 review: dict[str, Any] | None) -> Path:
    """compare.html: headline, per-scenario ratios with intervals, overlaid charts, plans, index findings.
    `summaries`: the first run of each variant; `review`: the best variant's review in brief, with its link."""
    figures: dict[str, dict[str, str]] = {"cdf": {}, "p95": {}}
    for name in result["scenarios"]:  # none when a compare stopped before any round was complete
        thresholds = judge.rules(manifest_file.read(Path(result["runs"][result["baseline"]][0])))[0]
        figures["cdf"][name] = charts.overlaid_cdfs(
            {s: summ["scenarios"][name]["distribution"]["cdf"] for s, summ in summaries.items()},
            f"{name}: latency CDF per index set (first run of each)",
            {s: summ["scenarios"][name]["latency_ms"]["p95"] for s, summ in summaries.items()})
        figures["p95"][name] = charts.overlaid_p95(
            {s: summ["scenarios"][name]["timeseries"] for s, summ in summaries.items()},
            f"{name}: P95 per second (first run of each)", judge.effective_limits(thresholds, name).get("p95_ms"))
    links = {s: [os.path.relpath(Path(d) / "report.html", folder) for d in runs] for s, runs in result["runs"].items()}
    stopped = result.get("stopped") or {}
    stray_links = [os.path.relpath(Path(r["run"]) / "report.html", folder) for r in stopped.get("not_compared", [])]
    html = render.jinja().get_template("compare.html.j2").render(
        r=result, figures=figures, review=review, links=links, stray_links=stray_links, generated=render.now(),
        words=wording,
        method="paired rounds: Student-t interval of the mean log ratio, variance from the rounds pooled with this "
               "machine's calibration, never below the within-run 1-second block bootstrap")
    return render.write_page(folder / "compare.html", html)
