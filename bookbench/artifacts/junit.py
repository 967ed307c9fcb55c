"""JUnit XML, the one writer for CI: the checks' results and the judge's verdicts both become test cases."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bookbench.errors import UsageError


@dataclass(frozen=True)
class Case:
    suite: str  # one <testsuite> per distinct value, in order of first appearance
    classname: str
    name: str
    outcome: Literal["passed", "failed", "skipped"]
    text: str
    seconds: float = 0.0


def write(path: Path, title: str, cases: Sequence[Case]) -> None:
    """Write `path`; an unwritable path is a usage error naming it (the caller's option), not a traceback."""
    root = ET.Element("testsuites", name=title)
    suites: dict[str, list[Case]] = {}
    for c in cases:
        suites.setdefault(c.suite, []).append(c)
    for suite, items in suites.items():
        el = ET.SubElement(root, "testsuite", name=suite, tests=str(len(items)),
                           failures=str(sum(c.outcome == "failed" for c in items)),
                           skipped=str(sum(c.outcome == "skipped" for c in items)),
                           time=f"{sum(c.seconds for c in items):.3f}")
        for c in items:
            case = ET.SubElement(el, "testcase", classname=c.classname, name=c.name, time=f"{c.seconds:.3f}")
            if c.outcome == "failed":
                ET.SubElement(case, "failure", message=c.text).text = c.text
            elif c.outcome == "skipped":
                ET.SubElement(case, "skipped", message=c.text)
            else:
                ET.SubElement(case, "system-out").text = c.text
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    except OSError as exc:
        raise UsageError(f"cannot write JUnit XML to {path}: {exc.strerror}") from None


def check_writable(path: Path) -> None:
    """Fail before a long job when its JUnit file could not be written at the end."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a"):
            pass
    except OSError as exc:
        raise UsageError(f"--junit {path}: cannot write there ({exc.strerror})") from None
