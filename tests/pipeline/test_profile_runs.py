"""A booking API that is not ours, end to end: `run` and `compare --quick` through the postgrest profile against
the PostgREST-style test target (login + JWT, rpc functions, text ids), with the audit and the reconciliation on
its database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bookbench.fakes.postgrest import DEFAULT_ANON_KEY
from bookbench.fakes.postgrest.process import PostgrestProcess
from tests.conftest import fetch, seeded
from tests.sample_rows import rows as read_rows

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TINY = Path(__file__).resolve().parents[1] / "data" / "scenarios_tiny.yaml"


@pytest.fixture
def postgrest(new_db: Callable[[], str], tmp_path: Path) -> Iterator[tuple[str, str]]:
    dsn = seeded(new_db())
    proc = PostgrestProcess(dsn, log_path=tmp_path / "postgrest.log")
    base = proc.start()
    try:
        yield dsn, base
    finally:
        proc.stop()


def _bookbench(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BOOKBENCH_POSTGREST_ANON_KEY": DEFAULT_ANON_KEY}
    return subprocess.run([sys.executable, "-m", "bookbench", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_a_run_through_the_postgrest_profile(postgrest: tuple[str, str], tmp_path: Path) -> None:
    dsn, base = postgrest
    before = int(fetch(dsn, "SELECT count(*) AS n FROM appointments")[0]["n"])
    done = _bookbench("run", "--target", "postgrest", "--target-url", base, "--dsn", dsn, "--scenario-file",
                      str(TINY), "--scenarios", "steady", "--quick", "--skip-checks", "--cleanup", "--out",
                      str(tmp_path / "out"))
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-2000:]
    assert "target profile postgrest: 3 tenant(s)" in done.stdout
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    man = json.loads((run_dir / "manifest.json").read_text())
    assert man["status"] == "completed" and man["target"]["profile"] == "postgrest"
    entry = man["scenarios"]["steady"]
    assert entry["counts"]["samples"] == entry["counts"]["locust"] > 0
    # the audit and the reconciliation ran on the target's database, text ids read as rows
    assert entry["audit"]["ok"] and entry["reconciliation"]["ok"], entry
    assert entry["reconciliation"]["acknowledged"] > 0 and "unreadable_ids" not in entry["reconciliation"]
    rows = read_rows(run_dir, "steady")
    names = {r["name"] for r in rows}
    assert {"checkAvailability", "lookupUpcomingAppointment", "bookClinicAppointment"} <= names
    failed = [r for r in rows if r["ok"] != "1"]
    assert not failed, failed[:5]
    # --cleanup: exactly the run's own bookings deleted, nothing else
    assert int(fetch(dsn, "SELECT count(*) AS n FROM appointments")[0]["n"]) == before
    assert "bookbench-anon-key" not in "".join(p.read_text(errors="replace") for p in run_dir.rglob("*.json"))


def test_a_quick_compare_through_the_postgrest_profile(postgrest: tuple[str, str], tmp_path: Path) -> None:
    dsn, base = postgrest
    done = _bookbench("compare", "--quick", "--target", "postgrest", "--target-url", base, "--dsn", dsn,
                      # one round: the rounds' interleaving is test_compare's; here, that every run speaks the profile
                      "--sets", "none,recommended", "--rounds", "1", "--scenario-file", str(TINY), "--scenarios",
                      "steady",
                      "--cleanup", "--out", str(tmp_path / "out"), timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    folder = Path(done.stdout.strip().splitlines()[-1])
    assert (folder / "compare.html").exists() and (folder / "compare.json").exists()
    runs = sorted((folder / "runs").iterdir())
    assert {json.loads((r / "manifest.json").read_text())["target"]["profile"] for r in runs} == {"postgrest"}


def test_a_vapi_run_goes_through_the_reference_vapi_profile(new_db: Callable[[], str], tmp_path: Path) -> None:
    """task_mix.protocol vapi picks the reference-vapi profile: bookings read from the tool's sentence are
    acknowledged and reconciled, and no answer is unclassified."""
    vapi = tmp_path / "vapi.yaml"
    vapi.write_text(TINY.read_text().replace("protocol: rest", "protocol: vapi"))
    dsn = seeded(new_db())
    done = _bookbench("run", "--dsn", dsn, "--scenario-file", str(vapi), "--scenarios", "steady", "--quick",
                      "--skip-checks", "--no-notifications", "--out", str(tmp_path / "out"))
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-2000:]
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    man = json.loads((run_dir / "manifest.json").read_text())
    entry = man["scenarios"]["steady"]
    assert man["target"]["profile"] == "reference-vapi" and entry["counts"]["samples"] > 0
    assert entry["reconciliation"]["ok"] and entry["reconciliation"]["acknowledged"] > 0, entry
    rows = read_rows(run_dir, "steady")
    assert not [r for r in rows if "unclassified" in r["error"]]
