"""`bookbench report` and `bookbench review`: re-render a run folder's analysis and pages from its files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bookbench.cli.common import EXIT_FAILED, console, handle_errors

RunDirArg = Annotated[Path, typer.Argument(metavar="RUN_DIR", help="a run folder (results/<run-id>)")]
BaselineOpt = Annotated[Path | None, typer.Option(
    "--baseline", help="an earlier run folder: enables the throughput-drop alert and before/after figures")]

DECISION_STYLE = {"GO": "[green]GO[/]", "NO-GO": "[red]NO-GO[/]", "INCOMPLETE": "[yellow]INCOMPLETE[/]"}


def render_and_print(run_dir: Path, baseline: Path | None, html: bool = True) -> bool:
    """Judge the run and render report.html (unless html=False); print the per-scenario/endpoint table, one line
    per failed figure (however many rules it breaks) and the decision.
    False on NO-GO."""
    from bookbench.analysis.judge import describe, describe_item
    from bookbench.cli.terminal import generator_lines, notification_lines, open_model_lines, summary_table
    from bookbench.pipeline import analyse

    out = analyse.report(run_dir, baseline, html=html)
    if out.summary["scenarios"]:
        console.print(summary_table(out.summary, out.judgement))
        for line in open_model_lines(out.summary) + notification_lines(out.summary) + generator_lines(out.summary):
            console.print(line)
    for group in out.judgement.failed_groups():  # one line per failed figure, naming every rule it breaks
        first = group[0]
        what = describe_item(group) if len(group) > 1 else f"{first.kind} {describe(first)}"
        console.print(f"  [red]{first.status.upper()}[/] {what}")
    for caveat in out.judgement.caveats:
        console.print(f"  [yellow]not complete:[/] {caveat}")
    page = out.report if out.report is not None else "not written (--no-report)"
    console.print(f"decision: {DECISION_STYLE[out.judgement.decision]} · report: {page}")
    return bool(out.judgement.decision != "NO-GO")


def _runs(run_dir: Path, baseline: Path | None) -> None:
    """Both folders must be run folders; the baseline is analysed once if it never was."""
    from bookbench.artifacts.folder import existing_run
    from bookbench.pipeline.analyse import ensure_analysed

    existing_run(run_dir)
    if baseline:
        existing_run(baseline)
        ensure_analysed(baseline)


@handle_errors
def report(run_dir: RunDirArg, baseline: BaselineOpt = None) -> None:
    """Analyse RUN_DIR's samples and write summary.json, verdicts.json, verdicts.junit.xml and report.html.

    Exit 1 on NO-GO: a threshold, target, alert rule, check or integrity verdict failed (distinct from 3, a
    crash); INCOMPLETE (quick, interrupted, checks not run) exits 0 and says what is missing."""
    _runs(run_dir, baseline)
    if not render_and_print(run_dir, baseline):
        raise typer.Exit(EXIT_FAILED)


@handle_errors
def review(run_dir: RunDirArg, baseline: BaselineOpt = None) -> None:
    """Write review.html, the post-deployment review a lead signs. Exit 1 on NO-GO (INCOMPLETE exits 0)."""
    from bookbench.pipeline.analyse import review_page

    _runs(run_dir, baseline)
    path, rv = review_page(run_dir, baseline)
    console.print(f"{DECISION_STYLE[rv.decision]} — {rv.headline}")
    console.print(f"review: {path}")
    if rv.decision == "NO-GO":
        raise typer.Exit(EXIT_FAILED)
