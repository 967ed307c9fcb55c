"""`bookbench report` and `bookbench review`: re-render a run folder's analysis and pages from its files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bookbench.cli.common import EXIT_FAILED, console, handle_errors
from bookbench.cli.terminal import DECISION_STYLE, render_and_print

RunDirArg = Annotated[Path, typer.Argument(metavar="RUN_DIR", help="a run folder (results/<run-id>)")]
BaselineOpt = Annotated[Path | None, typer.Option(
    "--baseline", help="an earlier run folder: enables the throughput-drop alert and before/after figures")]


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
