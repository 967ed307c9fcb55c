"""Check results out: a pass/fail table on the terminal and JUnit XML for CI."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bookbench.artifacts import junit
from bookbench.checks.base import CheckResult


def print_table(results: Sequence[CheckResult], console: Console) -> None:
    table = Table(title="bookbench checks", show_lines=False)
    for col in ("suite", "check", "result", "time", "detail"):
        table.add_column(col, overflow="fold")
    for r in results:
        verdict = "[green]PASS[/]" if r.passed else "[red]FAIL[/]"
        table.add_row(r.suite, r.name, verdict, f"{r.seconds * 1000:.0f} ms", r.detail)
    console.print(table)
    by_suite: dict[str, list[bool]] = {}
    for r in results:
        by_suite.setdefault(r.suite, []).append(r.passed)
    summary = ", ".join(f"{suite} {sum(v)}/{len(v)}" for suite, v in by_suite.items())
    passed = sum(r.passed for r in results)
    colour = "green" if passed == len(results) else "red"
    console.print(f"[{colour}]{passed}/{len(results)} passed[/] ({summary})")


def write_junit(results: Sequence[CheckResult], path: Path) -> None:
    junit.write(path, "bookbench checks", [
        junit.Case(r.suite, f"bookbench.{r.suite}", r.name, "passed" if r.passed else "failed", r.detail, r.seconds)
        for r in results])
