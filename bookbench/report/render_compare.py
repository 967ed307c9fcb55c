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
        notes={name: row_notes(result, name) for name in result["scenarios"]},
        words=wording,
        method="paired rounds: Student-t interval of the mean log ratio, variance from the rounds pooled with this "
               "machine's calibration, never below the within-run 1-second block bootstrap")
    return render.write_page(folder / "compare.html", html)


def _owner(error: str, runs: dict[str, list[str]]) -> tuple[str, str] | None:
    """The set and the reason behind a cell's error when it names one of the compared runs: comparison words such
    errors "<run folder>: <reason>" (analysis/comparison.py _figures), e.g. a run with too few samples."""
    for label, dirs in runs.items():
        for i, d in enumerate(dirs):
            prefix = f"{Path(d).name}: "
            if error.startswith(prefix):
                reason = error[len(prefix):].removeprefix("run: ")
                return label, reason if len(dirs) == 1 else f"run {i + 1} of {len(dirs)}: {reason}"
    return None


def row_notes(result: dict[str, Any], scenario: str) -> dict[str, str]:
    """The one sentence a row of a scenario table says instead of its cells, keyed by set or "set|other" for the
    row of one candidate against another. A row gets one when every comparison in it fails for the same reason
    (the reason is then said once, spanning the row, not in each metric's cell) or, for a set with no figure of
    its own, the reason its runs could not be measured, which the other rows' errors carry."""
    metrics = ("p50", "p95", "p99", "throughput")
    runs: dict[str, list[str]] = result["runs"]
    sets: dict[str, Any] = result["scenarios"][scenario]
    cells = {label: row["vs_baseline"] for label, row in sets.items() if row.get("vs_baseline")}
    cells |= {f"{label}|{other}": cis for label, row in sets.items() for other, cis in (row.get("vs") or {}).items()}
    own: dict[str, str] = {}  # a set's own reason, from any error that names one of its runs
    notes: dict[str, str] = {}
    for key, cis in cells.items():
        errors = [str(cis[m]["error"]) for m in metrics if m in cis and "error" in cis[m]]
        for error in errors:
            found = _owner(error, runs)
            if found:
                own.setdefault(*found)
        if len(errors) == len(metrics) and len(set(errors)) == 1:
            found = _owner(errors[0], runs)
            mine = key.split("|")[0]
            if found and found[0] != mine:  # the other side's runs: that set's own row says why
                notes[key] = f"not compared: {found[0]} has no figures (its row says why)"
            else:
                notes[key] = f"not compared: {found[1] if found else errors[0]}"
    for label, row in sets.items():
        if not any(m in row for m in metrics):
            notes[label] = f"no figures: {own.get(label, 'its runs have none in this scenario')}"
    return notes
