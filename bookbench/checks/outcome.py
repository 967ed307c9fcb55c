"""Check results out: a pass/fail/not-run table on the terminal and JUnit XML for CI (not run = skipped)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from rich.console import Console
from rich.text import Text

from bookbench.artifacts import junit
from bookbench.checks.base import CheckResult
from bookbench.tables import ContentTable

_JUNIT: dict[str, Literal["passed", "failed", "skipped"]] = {"pass": "passed", "fail": "failed",
                                                              "skipped": "skipped"}


def _one_line(text: str) -> Text:
    """A check's detail on one line of the table (an error message may hold newlines; the JUnit file keeps them),
    as plain text: a detail quoting a request may hold brackets that are not markup."""
    return Text(" / ".join(line.strip() for line in text.splitlines() if line.strip()))


def print_table(results: Sequence[CheckResult], console: Console) -> None:
    """One line per check. On a narrow terminal the check's name and detail wrap inside their columns; the short
    columns and the time never do. Piped to a log the table is as wide as its longest row (bookbench.tables)."""
    table = ContentTable(title="bookbench checks", title_justify="left", show_lines=False)
    for col in ("suite", "check", "result", "time", "detail"):
        fold = col in ("check", "detail")
        table.add_column(col, overflow="fold" if fold else "ellipsis", no_wrap=not fold,
                         justify="right" if col == "time" else "left")
    for r in results:
        verdict = {"pass": "[green]PASS[/]", "fail": "[red]FAIL[/]", "skipped": "[yellow]NOT RUN[/]"}[r.status]
        table.add_row(r.suite, Text(r.name), verdict, f"{r.seconds * 1000:,.0f} ms", _one_line(r.detail))
    console.print(table)
    by_suite: dict[str, list[CheckResult]] = {}
    for r in results:
        by_suite.setdefault(r.suite, []).append(r)
    summary = ", ".join(f"{suite} " + (f"{sum(r.passed for r in v)}/{len(v)}" if any(not r.skipped for r in v)
                                       else "not run") for suite, v in by_suite.items())
    passed = sum(r.passed for r in results)
    skipped = sum(r.skipped for r in results)
    ran = len(results) - skipped
    colour = "yellow" if not ran else "green" if passed == ran else "red"
    # a check not run is counted apart: never in the passed figure, never hidden
    not_run = f", {skipped} not run (not applicable)" if skipped else ""
    console.print(f"[{colour}]{passed}/{ran} passed[/]{not_run} ({summary})")


def failed(results: Sequence[CheckResult]) -> list[CheckResult]:
    return [r for r in results if r.status == "fail"]


def write_junit(results: Sequence[CheckResult], path: Path) -> None:
    junit.write(path, "bookbench checks", [
        junit.Case(r.suite, f"bookbench.{r.suite}", r.name, _JUNIT[r.status], r.detail, r.seconds) for r in results])
