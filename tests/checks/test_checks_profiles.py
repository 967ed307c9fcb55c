"""The checks through the target layer: smoke, UAT and stress pass through both reference profiles and the
PostgREST-style profile (real services on seeded databases); a profile whose answer rules are wrong fails smoke,
naming the operation; suites written for the reference service are not run for another profile, never passed."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bookbench.checks.base import CheckResult, CheckTarget
from bookbench.checks.runner import run_suites
from bookbench.fakes.postgrest import DEFAULT_ANON_KEY, ENV_ANON_KEY
from bookbench.fakes.postgrest.process import PostgrestProcess
from bookbench.pipeline.stack import ServiceProcess
from bookbench.target.bind import bind
from bookbench.target.profile import BUILTIN_DIR
from tests.budget import budget
from tests.conftest import SMALL, run_async, seeded

pytestmark = pytest.mark.integration

SUITES = ["smoke", "uat", "stress", "preflight", "notifications", "hostile", "audit"]


@pytest.fixture(scope="module")
def postgrest(new_db: Callable[[], str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgrestProcess]:
    with PostgrestProcess(seeded(new_db()), log_path=tmp_path_factory.mktemp("pgrst") / "target.log") as proc:
        yield proc


@pytest.fixture(autouse=True)
def anon_key(monkeypatch: pytest.MonkeyPatch) -> None:
    # the postgrest profile's apikey header is {env:BOOKBENCH_POSTGREST_ANON_KEY}
    monkeypatch.setenv(ENV_ANON_KEY, DEFAULT_ANON_KEY)


def _checked(name: str, api: ServiceProcess, postgrest: PostgrestProcess) -> CheckTarget:
    base_url, dsn = (postgrest.base_url, postgrest.dsn) if name == "postgrest" else (api.base_url, api.dsn)
    return CheckTarget(base_url, dsn, SMALL, api=bind(name, "rest", SMALL, dsn))


def _by_status(results: list[CheckResult]) -> dict[str, list[tuple[str, str, str]]]:
    out: dict[str, list[tuple[str, str, str]]] = {"pass": [], "fail": [], "skipped": []}
    for r in results:
        out[r.status].append((r.suite, r.name, r.detail))
    return out


@pytest.mark.parametrize("name", ["reference-rest", "reference-vapi", "postgrest"])
def test_smoke_uat_stress_and_audit_pass_through_every_builtin_profile(
        name: str, api: ServiceProcess, postgrest: PostgrestProcess) -> None:
    results = run_async(run_suites(_checked(name, api, postgrest), ["smoke", "uat", "stress", "audit"], repeat=2))
    found = _by_status(results)
    assert found["fail"] == [] and found["skipped"] == []
    assert {r.suite for r in results} == {"smoke", "uat", "stress", "audit"}
    stress = [r for r in results if r.suite == "stress"]
    assert len(stress) == 4 and all(r.detail.startswith("1 booked, 9 slot_taken") for r in stress)
    smoke = next(r for r in results if r.name == "every operation answers as the profile expects")
    for op in ("checkAvailability", "lookupUpcomingAppointment", "bookClinicAppointment", "cancelAppointment"):
        assert op in smoke.detail
    if name == "postgrest":
        life = next(r for r in results if r.name.startswith("booking lifecycle"))
        assert "cancel again -> refused" in life.detail and "cancel by tenant 2 -> not_found" in life.detail


def test_reference_only_suites_are_not_run_for_another_profile(api: ServiceProcess,
                                                                 postgrest: PostgrestProcess) -> None:
    results = run_async(run_suites(_checked("postgrest", api, postgrest), ["preflight", "notifications", "hostile"]))
    assert [(r.suite, r.status, r.passed) for r in results] == [
        ("preflight", "skipped", False), ("notifications", "skipped", False), ("hostile", "skipped", False)]
    assert all(r.detail.startswith("not applicable to profile postgrest: ") for r in results)


def test_a_booking_rule_that_never_matches_fails_smoke_naming_the_operation(api: ServiceProcess,
                                                                             tmp_path: Path) -> None:
    text = (BUILTIN_DIR / "reference-rest.yaml").read_text()
    wrong = text.replace("id: {path: appointment_id, as_int: true}", "id: {path: booking.id, as_int: true}")
    assert wrong != text
    path = tmp_path / "wrong.yaml"
    path.write_text(wrong.replace("name: reference-rest", "name: wrong-id"))
    checked = CheckTarget(api.base_url, api.dsn, SMALL, api=bind(str(path), "rest", SMALL, api.dsn))
    results = run_async(run_suites(checked, ["smoke"]))
    first = results[0]
    assert first.name == "every operation answers as the profile expects" and not first.passed
    assert "bookClinicAppointment answered unclassified (HTTP 201)" in first.detail, first.detail


def _bookbench(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, ENV_ANON_KEY: DEFAULT_ANON_KEY, "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-m", "bookbench", *args],
                          capture_output=True, text=True, timeout=budget(600),
                          env=env)


def test_cli_check_all_against_the_postgrest_target(postgrest: PostgrestProcess, tmp_path: Path) -> None:
    junit = tmp_path / "checks.xml"
    done = _bookbench("check", "all", "--target", "postgrest", "--base-url", postgrest.base_url, "--dsn",
                      postgrest.dsn, "--junit", str(junit))
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "not applicable to profile postgrest" in out and "2 not run (not applicable)" in out, out
    root = ET.parse(junit).getroot()
    assert not root.findall(".//failure")
    skipped = {s.get("name"): int(s.get("skipped") or 0) for s in root.findall("testsuite")}
    assert skipped["preflight"] == 1 and skipped["hostile"] == 1 and skipped["smoke"] == 0
    # asking only for what does not apply checks nothing: not a pass
    none = _bookbench("check", "hostile", "--target", "postgrest", "--base-url", postgrest.base_url)
    assert none.returncode == 1 and "none of the checks asked for applies" in none.stdout + none.stderr
