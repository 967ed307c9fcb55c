"""`bookbench report` and `bookbench review`: re-render a run folder's analysis and pages from its files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bookbench.analysis.judge import describe
from bookbench.cli.common import EXIT_CHECK_FAILED, EXIT_USAGE, console, err_console, handle_errors
from bookbench.report import render

RunDirArg = Annotated[Path, typer.Argument(metavar="RUN_DIR", help="a run folder (results/<run-id>)")]
BaselineOpt = Annotated[Path | None, typer.Option(
    "--baseline", help="an earlier run folder: enables the throughput-drop alert and before/after figures")]


def _require_run(path: Path, what: str) -> None:
    if not (path / "manifest.json").exists():
        err_console.print(f"[red]{what} {path} is not a run folder[/] (no manifest.json)")
        raise typer.Exit(EXIT_USAGE)
    try:
        json.loads((path / "manifest.json").read_text())
    except ValueError:
        err_console.print(f"[red]{path}/manifest.json is not valid JSON[/]")
        raise typer.Exit(EXIT_USAGE) from None


DECISION_STYLE = {"GO": "[green]GO[/]", "NO-GO": "[red]NO-GO[/]", "INCOMPLETE": "[yellow]INCOMPLETE[/]"}


def render_and_print(run_dir: Path, baseline: Path | None) -> bool:
    """Render report.html; print one line per failed verdict and the decision. False on NO-GO."""
    out = render.report(run_dir, baseline)
    for v in out.judgement.failures:
        console.print(f"  [red]{v.status.upper()}[/] {v.kind} {describe(v)}")
    for caveat in out.judgement.caveats:
        console.print(f"  [yellow]not complete:[/] {caveat}")
    console.print(f"decision: {DECISION_STYLE[out.judgement.decision]} · report: {out.report}")
    return out.judgement.decision != "NO-GO"


@handle_errors
def report(run_dir: RunDirArg, baseline: BaselineOpt = None) -> None:
    """Analyse RUN_DIR's samples and write summary.json, verdicts.json, verdicts.junit.xml and report.html.

    Exit 1 on NO-GO: a threshold, target, alert rule, check or integrity verdict failed (distinct from 3, a
    crash); INCOMPLETE (quick, interrupted, checks not run) exits 0 and says what is missing."""
    _require_run(run_dir, "RUN_DIR")
    if baseline:
        _require_run(baseline, "--baseline")
        if not (baseline / "summary.json").exists():
            render.report(baseline)
    if not render_and_print(run_dir, baseline):
        raise typer.Exit(EXIT_CHECK_FAILED)


@handle_errors
def review(run_dir: RunDirArg, baseline: BaselineOpt = None) -> None:
    """Write review.html, the post-deployment review a lead signs. Exit 1 on NO-GO (INCOMPLETE exits 0)."""
    _require_run(run_dir, "RUN_DIR")
    if baseline:
        _require_run(baseline, "--baseline")
        if not (baseline / "summary.json").exists():
            render.report(baseline)
    path, rv = render.review_page(run_dir, baseline)
    console.print(f"{DECISION_STYLE[rv.decision]} — {rv.headline}")
    console.print(f"review: {path}")
    if rv.decision == "NO-GO":
        raise typer.Exit(EXIT_CHECK_FAILED)
