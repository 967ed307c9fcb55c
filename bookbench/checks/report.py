"""Check results out: a pass/fail table on the terminal and JUnit XML for CI."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

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
    suites = ET.Element("testsuites", name="bookbench checks")
    by_suite: dict[str, list[CheckResult]] = {}
    for r in results:
        by_suite.setdefault(r.suite, []).append(r)
    for suite, items in by_suite.items():
        el = ET.SubElement(suites, "testsuite", name=suite, tests=str(len(items)),
                           failures=str(sum(not r.passed for r in items)),
                           time=f"{sum(r.seconds for r in items):.3f}")
        for r in items:
            case = ET.SubElement(el, "testcase", classname=f"bookbench.{suite}", name=r.name,
                                 time=f"{r.seconds:.3f}")
            if not r.passed:
                ET.SubElement(case, "failure", message=r.detail).text = r.detail
            else:
                ET.SubElement(case, "system-out").text = r.detail
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suites).write(path, encoding="utf-8", xml_declaration=True)
