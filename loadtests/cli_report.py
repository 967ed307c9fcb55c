"""`bookbench report` and `bookbench review`: re-render a run folder's analysis and pages from its files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from loadtests.cli_common import EXIT_CHECK_FAILED, EXIT_USAGE, console, err_console, handle_errors
from reports import render

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


def render_and_print(run_dir: Path, baseline: Path | None) -> bool:
    """Render report.html; print one line per failed verdict and the go/no-go. Returns go."""
    out = render.report(run_dir, baseline)
    for v in out.verdicts:
        if v.failed:
            console.print(f"  [red]FAIL[/] {v.kind} {v.scenario} {v.metric} = {v.value:.4g} "
                          f"(limit {v.limit:g}, n={v.samples:,})")
    verdict = "[green]GO[/]" if out.go else "[red]NO-GO[/]"
    console.print(f"thresholds: {verdict} · report: {out.report}")
    return out.go


@handle_errors
def report(run_dir: RunDirArg, baseline: BaselineOpt = None) -> None:
    """Analyse RUN_DIR's samples and write summary.json, verdicts.json, verdicts.junit.xml and report.html.

    Exit 1 when a threshold or alert rule fails (distinct from 3, a crash)."""
    _require_run(run_dir, "RUN_DIR")
    if baseline:
        _require_run(baseline, "--baseline")
        if not (baseline / "summary.json").exists():
            render.report(baseline)
    if not render_and_print(run_dir, baseline):
        raise typer.Exit(EXIT_CHECK_FAILED)


@handle_errors
def review(run_dir: RunDirArg, baseline: BaselineOpt = None) -> None:
    """Write review.html, the post-deployment review a lead signs. Exit 1 on NO-GO."""
    _require_run(run_dir, "RUN_DIR")
    if baseline:
        _require_run(baseline, "--baseline")
        if not (baseline / "summary.json").exists():
            render.report(baseline)
    path, rv = render.review_page(run_dir, baseline)
    console.print(("[green]GO[/]" if rv.go else "[red]NO-GO[/]") + f" — {rv.headline}")
    console.print(f"review: {path}")
    if not rv.go:
        raise typer.Exit(EXIT_CHECK_FAILED)
