"""compare.html from compare.json, the first run of each variant's summary and the best variant's review."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bookbench.analysis import judge, statements_compare, wording
from bookbench.analysis.review import Review
from bookbench.artifacts import manifest as manifest_file
from bookbench.artifacts.comparison import FIGURES, Cell, Comparison, NotCompared, StatementSet
from bookbench.artifacts.db_evidence import WAIT_CATEGORIES
from bookbench.artifacts.summary import Summary
from bookbench.report import charts, render


@dataclass(frozen=True)
class ReviewBrief:
    """The best variant's review as the compare page shows it, and the link to the review page to sign."""

    decision: str
    headline: str
    caveats: list[str]
    recommendation: list[str]
    link: str

    @classmethod
    def of(cls, rv: Review, page: Path, folder: Path) -> ReviewBrief:
        return cls(decision=rv.decision, headline=rv.headline, caveats=rv.caveats,
                   recommendation=rv.recommendation, link=os.path.relpath(page, folder))


def compare_page(folder: Path, result: Comparison, summaries: dict[str, Summary],
                 review: ReviewBrief | None) -> Path:
    """compare.html: headline, per-scenario ratios with intervals, overlaid charts, plans, index findings.
    `summaries`: the first run of each variant; `review`: the best variant's review in brief, with its link."""
    figures: dict[str, dict[str, str]] = {"cdf": {}, "p95": {}}
    for name in result.scenarios:  # none when a compare stopped before any round was complete
        thresholds = judge.rules(manifest_file.read(Path(result.runs[result.baseline][0])))[0]
        figures["cdf"][name] = charts.overlaid_cdfs(
            {s: summ.scenarios[name].distribution.cdf for s, summ in summaries.items()},
            f"{name}: latency CDF per index set (first run of each)",
            {s: summ.scenarios[name].latency_ms.p95 for s, summ in summaries.items()})
        figures["p95"][name] = charts.overlaid_p95(
            {s: summ.scenarios[name].timeseries for s, summ in summaries.items()},
            f"{name}: P95 per second (first run of each)", judge.effective_limits(thresholds, name).get("p95_ms"))
    links = {s: [os.path.relpath(Path(d) / "report.html", folder) for d in runs] for s, runs in result.runs.items()}
    strays = result.stopped.not_compared if result.stopped else []
    stray_links = [os.path.relpath(Path(r.run) / "report.html", folder) for r in strays]
    html = render.jinja().get_template("compare.html.j2").render(
        r=result, figures=figures, review=review, links=links, stray_links=stray_links, generated=render.now(),
        notes={name: row_notes(result, name) for name in result.scenarios}, figure_names=FIGURES,
        words=wording, rel=lambda path: os.path.relpath(path, folder), wait_rows=wait_rows(result),
        other_top=statements_compare.OTHER_TOP, minor=minor_statements(result), minor_share=MINOR_SHARE,
        method="paired rounds: Student-t interval of the mean log ratio, variance from the rounds pooled with this "
               "machine's calibration, never below the within-run 1-second block bootstrap")
    return render.write_page(folder / "compare.html", html)


MINOR_SHARE = 0.01


def _spent(s: StatementSet) -> float:
    """A set's execution time in a statement, summed over its rounds (0 when a round has none)."""
    return s.calls * s.mean_exec_ms if s.mean_exec_ms is not None else 0.0


def minor_statements(result: Comparison) -> dict[str, list[str]]:
    """Per scenario, the statements (keys) the page names in one line instead of a table block: under MINOR_SHARE
    of the shown statements' execution time in every set that has figures for them (compare.json keeps them all)."""
    out: dict[str, list[str]] = {}
    for name, sc in (result.statements or {}).items():
        totals = {label: sum(_spent(row.sets[label]) for row in sc.statements if label in row.sets)
                  for label in result.sets}
        out[name] = [row.key for row in sc.statements
                     if all(_spent(s) < MINOR_SHARE * totals[label] for label, s in row.sets.items())]
    return out


def wait_rows(result: Comparison) -> dict[str, list[str]]:
    """Per scenario, the wait categories some set spent a share of its busy time in (the others would be rows of
    zeros), in WAIT_CATEGORIES order."""
    return {name: [c for c in WAIT_CATEGORIES if any(w.shares.get(c, 0) > 0 for w in sc.waits.values())]
            for name, sc in (result.statements or {}).items()}


def _owner(error: str, runs: dict[str, list[str]]) -> tuple[str, str] | None:
    """The set and the reason behind a cell's error when it names one of the compared runs: comparison words such
    errors "<run folder>: <reason>" (analysis/run_figures.figures), e.g. a run with too few samples."""
    for label, dirs in runs.items():
        for i, d in enumerate(dirs):
            prefix = f"{Path(d).name}: "
            if error.startswith(prefix):
                reason = error[len(prefix):].removeprefix("run: ")
                return label, reason if len(dirs) == 1 else f"run {i + 1} of {len(dirs)}: {reason}"
    return None


def row_notes(result: Comparison, scenario: str) -> dict[str, str]:
    """The one sentence a row of a scenario table says instead of its cells, keyed by set or "set|other" for the
    row of one candidate against another. A row gets one when every comparison in it fails for the same reason
    (the reason is then said once, spanning the row, not in each metric's cell) or, for a set with no figure of
    its own, the reason its runs could not be measured, which the other rows' errors carry."""
    runs = result.runs
    sets = result.scenarios[scenario]
    cells: dict[str, dict[str, Cell]] = {label: row.vs_baseline for label, row in sets.items() if row.vs_baseline}
    cells |= {f"{label}|{other}": cis for label, row in sets.items() for other, cis in row.vs.items()}
    own: dict[str, str] = {}  # a set's own reason, from any error that names one of its runs
    notes: dict[str, str] = {}
    for key, cis in cells.items():
        errors = [c.error for c in (cis.get(m) for m in FIGURES) if isinstance(c, NotCompared)]
        for error in errors:
            found = _owner(error, runs)
            if found:
                own.setdefault(*found)
        if len(errors) == len(FIGURES) and len(set(errors)) == 1:
            found = _owner(errors[0], runs)
            mine = key.split("|")[0]
            if found and found[0] != mine:  # the other side's runs: that set's own row says why
                notes[key] = f"not compared: {found[0]} has no figures (its row says why)"
            else:
                notes[key] = f"not compared: {found[1] if found else errors[0]}"
    for label, row in sets.items():
        if not row.has_figures():
            notes[label] = f"no figures: {own.get(label, 'its runs have none in this scenario')}"
    return notes
