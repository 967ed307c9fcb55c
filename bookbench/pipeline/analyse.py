"""The analysis stage of one run folder: samples and soak probes -> summary.json -> the judge -> verdicts.* ->
report.html and, on request, review.html. `bookbench report` / `review` re-run it from the folder's files alone."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bookbench.analysis import drift, judge, review
from bookbench.analysis import summarize as analysis
from bookbench.artifacts import manifest as manifest_file
from bookbench.artifacts import run_files, verdicts
from bookbench.artifacts import summary as summary_file
from bookbench.artifacts.folder import RunFolder
from bookbench.artifacts.manifest import Manifest
from bookbench.artifacts.summary import Summary
from bookbench.report import render


@dataclass
class Analysed:
    run_dir: Path
    summary: Summary
    judgement: judge.Judgement
    page: Path | None  # report.html; None when the page was not asked for (`run --no-report`)


def judged(run_dir: Path, baseline_dir: Path | None = None) -> tuple[Manifest, Summary, judge.Judgement]:
    """(manifest, summary, judgement) of an analysed run folder: the one place pages get their decision from."""
    man = manifest_file.read(run_dir)
    # a summary.json from before the drift figures were stored gets them here, in memory (`report` rewrites the file)
    summary = drift.measure_run(run_dir, summary_file.read(run_dir))
    baseline = summary_file.read(baseline_dir) if baseline_dir else None
    checks = run_files.read_checks(RunFolder(run_dir).checks)
    return man, summary, judge.judge(man, summary, checks, baseline)


def analyse_and_render(run_dir: Path, baseline_dir: Path | None = None, html: bool = True) -> Analysed:
    """Analyse the samples, judge them, and write summary.json, verdicts.* and (unless html=False) report.html.
    The decision never depends on html: `run --no-report` exits on the same judgement as `run`."""
    # the drift figures are measured here, once: the judge and the page only read them from summary.json
    summary_file.write(run_dir, drift.measure_run(run_dir, analysis.analyse_run(run_dir)))
    # what the report shows is exactly what the files say
    man, summary, j = judged(run_dir, baseline_dir)
    verdicts.write(run_dir, judge.to_file(j))
    page = render.report_page(run_dir, man, summary, j, run_files.read_checks(RunFolder(run_dir).checks)) if html \
        else None
    return Analysed(run_dir, summary, j, page)


def ensure_analysed(run_dir: Path) -> None:
    """A baseline or compared run analysed once: its summary.json is what every later page reads."""
    if not RunFolder(run_dir).summary.exists():
        analyse_and_render(run_dir)


def review_page(run_dir: Path, baseline_dir: Path | None = None) -> tuple[Path, review.Review]:
    """The post-deployment review (review.html) from an analysed run folder."""
    ensure_analysed(run_dir)
    man, summary, j = judged(run_dir, baseline_dir)
    baseline = summary_file.read(baseline_dir) if baseline_dir else None
    rv = review.build(man, summary, j, baseline)
    return render.review_html(run_dir, man, rv, baseline, summary.method), rv
