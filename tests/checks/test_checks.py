"""The pre-deployment checks: they pass on the real function, and they catch a broken one."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bookbench.checks.base import CheckTarget
from bookbench.checks.runner import run_suites
from bookbench.db.conn import run_with
from bookbench.pipeline.stack import ServiceProcess
from tests.conftest import SMALL, run_async, seeded

pytestmark = pytest.mark.integration

# The classic race the seed fixed: check, then insert, with no lock. The sleep widens the window so that the
# test is deterministic; without the lock every concurrent caller sees the slot free.
BROKEN_FUNCTION = """
CREATE OR REPLACE FUNCTION book_appointment_atomic(p_org_id bigint, p_contact_id bigint, p_provider_id bigint,
    p_start timestamptz, p_duration_minutes integer) RETURNS TABLE (status text, appointment_id bigint)
LANGUAGE plpgsql AS $fn$
DECLARE v_id bigint;
BEGIN
    PERFORM 1 FROM appointments a WHERE a.org_id = p_org_id AND a.provider_id = p_provider_id
       AND a.status <> 'cancelled' AND a.scheduled_at < p_start + make_interval(mins => p_duration_minutes)
       AND a.scheduled_at + make_interval(mins => a.duration_minutes) > p_start;
    IF FOUND THEN RETURN QUERY SELECT 'slot_taken'::text, NULL::bigint; RETURN; END IF;
    PERFORM pg_sleep(0.2);
    INSERT INTO appointments (org_id, contact_id, provider_id, scheduled_at, duration_minutes)
    VALUES (p_org_id, p_contact_id, p_provider_id, p_start, p_duration_minutes) RETURNING id INTO v_id;
    RETURN QUERY SELECT 'booked'::text, v_id;
END $fn$;
"""


@pytest.fixture
def target(api: ServiceProcess, small_db: str) -> CheckTarget:
    return CheckTarget(api.base_url, small_db, SMALL)


def test_every_suite_passes_and_stress_holds_when_repeated(target: CheckTarget) -> None:
    results = run_async(run_suites(target, ["smoke", "uat", "stress", "preflight", "audit"], repeat=5))
    failed = [(r.suite, r.name, r.detail) for r in results if not r.passed]
    assert failed == []
    assert sum(r.suite == "stress" for r in results) == 10
    assert {r.suite for r in results} == {"smoke", "uat", "stress", "preflight", "audit"}


@pytest.fixture
def broken(new_db: Callable[[], str], tmp_path: Path) -> Iterator[CheckTarget]:
    dsn = seeded(new_db())
    run_with(dsn, lambda conn: conn.execute(BROKEN_FUNCTION))
    proc = ServiceProcess(dsn, log_path=tmp_path / "svc.log")
    proc.start()
    yield CheckTarget(proc.base_url, dsn, SMALL)
    proc.stop()


def test_checks_catch_a_booking_function_without_the_lock(broken: CheckTarget) -> None:
    results = {(r.suite, r.name.split(" (")[0]): r for r in run_async(
        run_suites(broken, ["stress", "preflight", "audit"]))}
    assert not results[("stress", "10 concurrent bookings, same slot")].passed
    assert not results[("preflight", "booking function takes pg_advisory_xact_lock")].passed
    assert not results[("preflight", "refuses REPEATABLE READ")].passed
    audit = results[("audit", "no double-booking in the database")]
    assert not audit.passed and not audit.detail.startswith("0 ")


def _bookbench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bookbench", *args], capture_output=True, text=True,
                          timeout=300)


def test_cli_check_against_a_running_service_writes_junit(target: CheckTarget, tmp_path: Path) -> None:
    junit = tmp_path / "checks.xml"
    done = _bookbench("check", "smoke", "stress", "audit", "--base-url", target.base_url, "--dsn",
                      target.dsn or "", "--repeat", "2", "--junit", str(junit))
    assert done.returncode == 0, done.stdout + done.stderr
    root = ET.parse(junit).getroot()
    cases = root.findall(".//testcase")
    assert len(cases) == 4 + 4 + 1 and not root.findall(".//failure")
    assert "9/9 passed" in done.stdout


@pytest.mark.netns  # names a non-loopback address: runs inside a loopback-only namespace
def test_cli_refuses_remote_targets_and_unknown_suites() -> None:
    remote = _bookbench("check", "smoke", "--base-url", "http://192.0.2.10:8000")
    assert remote.returncode == 2 and "--allow-remote" in remote.stderr
    unknown = _bookbench("check", "smok", "--base-url", "http://127.0.0.1:9")
    assert unknown.returncode == 2 and "unknown check 'smok'" in unknown.stderr
    leaked = _bookbench("check", "audit", "--dsn", "postgresql://u:hunter2@db.example.com/x")
    assert leaked.returncode == 2 and "hunter2" not in leaked.stdout + leaked.stderr


def test_audit_reads_the_database_the_user_named(new_db: Callable[[], str], tmp_path: Path) -> None:
    """Self-hosted checks write to a scratch database beside the named one; the audit must read the named one
    (an overlap planted there is found) and say which it read."""
    dsn = seeded(new_db())
    run_with(dsn, lambda conn: conn.execute(
        "INSERT INTO appointments (org_id, contact_id, provider_id, scheduled_at, duration_minutes) "
        "SELECT org_id, contact_id, provider_id, scheduled_at + interval '10 minutes', 30 FROM appointments "
        "WHERE status = 'booked' ORDER BY id LIMIT 1"))
    junit = tmp_path / "audit.xml"
    done = _bookbench("check", "audit", "--dsn", dsn, "--junit", str(junit))
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert f"preflight and audit read {dsn}" in out, out
    detail = ET.parse(junit).getroot().find(".//failure")
    assert detail is not None and detail.get("message", "").startswith("1 overlapping appointments"), out
    assert f"(database {dsn})" in (detail.get("message") or ""), detail.get("message")


def test_check_against_a_deployment_with_its_own_layout(api: ServiceProcess) -> None:
    layout = ["--orgs", str(SMALL.orgs), "--providers-per-org", str(SMALL.providers_per_org), "--contacts",
              str(SMALL.contacts)]
    done = _bookbench("check", "smoke", "--base-url", api.base_url, *layout)
    assert done.returncode == 0, done.stdout + done.stderr
    # the default layout (50 clinics, 100,000 contacts) does not fit this deployment: the checks say so by failing
    wrong = _bookbench("check", "smoke", "--base-url", api.base_url)
    assert wrong.returncode == 1, wrong.stdout
    both = _bookbench("check", "smoke", "--base-url", api.base_url, "--dsn", api.dsn, "--orgs", "3")
    assert both.returncode == 2 and "read from the database" in both.stderr
