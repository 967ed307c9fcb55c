"""A wheel built from the repository works on its own: SQL, templates and the default scenarios ship as package
data, so `bookbench check all` runs from an installed wheel outside any checkout."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from collections import Counter
from pathlib import Path
from xml.etree import ElementTree

import pytest

from tests.budget import budget

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


def test_a_wheel_runs_check_all(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist),
                    str(REPO)], check=True, timeout=300, capture_output=True)
    wheel = next(dist.glob("bookbench-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for shipped in ("bookbench/scenarios.yaml", "bookbench/sql/schema/002_booking.sql",
                    "bookbench/sql/indexes/recommended.sql", "bookbench/report/templates/report.html.j2"):
        assert shipped in names, shipped
    # a clean site folder with only the wheel in it; the dependencies come from this environment's
    # site-packages as a plain path, so the checkout's editable install is not on the path
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = {"PYTHONPATH": f"{site}:{sysconfig.get_paths()['purelib']}", "PATH": "/usr/bin:/bin",
           "HOME": str(tmp_path)}
    where = subprocess.run([sys.executable, "-S", "-c", "import bookbench; print(bookbench.__file__)"],
                           env=env, cwd=tmp_path, capture_output=True, text=True, check=True)
    assert where.stdout.startswith(str(site)), where.stdout
    junit = tmp_path / "checks.xml"
    proc = subprocess.run([sys.executable, "-S", "-m", "bookbench", "check", "all", "--examples", "10",
                           "--data-dir", str(tmp_path / "pg"), "--junit", str(junit)],
                          env={**env, "COLUMNS": "200"}, cwd=tmp_path, capture_output=True, text=True,
                          timeout=budget(300))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # every suite, Path B's too (fake providers and dispatchers started by the check itself), in the JUnit file
    assert "passed" in proc.stdout and "notifications 5/5" in " ".join(proc.stdout.split()), proc.stdout
    report = ElementTree.parse(junit).getroot()
    by_suite = Counter(case.get("classname") for case in report.iter("testcase"))
    assert by_suite["bookbench.notifications"] == 5 and len(by_suite) >= 6, by_suite
    assert not [f for f in report.iter() if f.tag in ("failure", "error")]
