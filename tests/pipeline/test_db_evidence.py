"""The database evidence of a run (pipeline/db_evidence.py): a real `bookbench run` on the embedded server writes
db/statements.json, db/waits.json and auto_explain's plans for its window; a run against a deployment's database
only reads (no reset, no auto_explain); a run without a database says so for each part."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from bookbench.artifacts.db_evidence import read_statements, read_waits
from bookbench.pipeline.db_evidence import (
    AUTO_EXPLAIN_CAP,
    NO_DATABASE,
    OWN_APPLICATIONS,
    parse_auto_explain,
)
from bookbench.pipeline.narration import narrate_to
from bookbench.pipeline.run import RunOptions, execute
from bookbench.pipeline.stack import ServiceProcess
from tests.budget import budget
from tests.conftest import fetch
from tests.sample_rows import rows as read_rows

TINY = Path(__file__).resolve().parents[1] / "data" / "scenarios_tiny.yaml"
SECRET = "tiny-test-secret-4f1c"
WARMUP_S = 0.5  # the tiny file's steady


def _epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).timestamp()


@pytest.mark.integration
@pytest.mark.slow
def test_a_run_records_its_statements_waits_and_slow_plans(tmp_path: Path) -> None:
    """auto_explain's threshold at 0 ms: every statement's plan is logged, so the scenario's file holds the cap, the
    booking function's inner statements among them (nested statements on), none of the evidence's own."""
    env = {**os.environ, "BOOKBENCH_AUTO_EXPLAIN_MS": "0"}
    done = subprocess.run(
        [sys.executable, "-m", "bookbench", "run", "--scenario-file", str(TINY), "--out", str(tmp_path / "out"),
         "--data-dir", str(tmp_path / "pg"), "--key-secret", SECRET, "--scenarios", "steady", "--skip-checks",
         "--no-notifications"],  # the booking's statements are the subject; a dispatcher's would only add plans
        capture_output=True, text=True, timeout=budget(240), env=env)
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    entry = manifest["scenarios"]["steady"]
    assert entry["status"] == "completed", entry
    rows = read_rows(run_dir, "steady")
    first = min(float(r["ts"]) for r in rows)
    bookings = sum(r["name"] == "bookClinicAppointment" for r in rows)

    stmts = read_statements(run_dir / "db" / "statements.json")
    assert stmts is not None and stmts.source.startswith("pg_stat_statements 1.")
    assert "track = all" in stmts.source and "auto_explain" in stmts.source
    steady = stmts.scenarios["steady"]
    assert steady.not_measured is None and steady.window is not None
    # inside the load: from the first request plus the warm-up to the end (the last snapshot is the one taken as
    # the load stopped, before the scenario was recorded as ended)
    assert first + WARMUP_S <= steady.window.start < steady.window.end <= _epoch(entry["ended_at"])
    labels = {s.label: s for s in steady.statements}
    booking, check = labels["booking function"], labels["conflict check"]
    assert 0 < booking.calls <= bookings and booking.toplevel is True
    assert check.calls > 0 and check.toplevel is False and check.own
    assert booking.mean_exec_ms > 0 and booking.shared_blks_hit > 0 and booking.wal_bytes and booking.wal_bytes > 0
    assert [s.total_exec_ms for s in steady.statements] == sorted((s.total_exec_ms for s in steady.statements),
                                                                  reverse=True)
    assert f"steady: {len(steady.statements)} statements over" in done.stdout

    waits = read_waits(run_dir / "db" / "waits.json")
    assert waits is not None
    w = waits.scenarios["steady"]
    assert w.window is not None and first + WARMUP_S <= w.window.start <= first + WARMUP_S + 1.0
    assert w.waits is not None and w.waits.instants > 0, w.waits_not_measured
    assert w.service is not None and w.service.requests > 0, w.service_not_measured

    path = run_dir / "db" / "steady_auto_explain.jsonl"
    plans = [json.loads(line) for line in path.read_text().splitlines()]
    assert steady.auto_explain_found is not None and steady.auto_explain_found >= len(plans)
    assert steady.auto_explain_plans == len(plans) == min(steady.auto_explain_found, AUTO_EXPLAIN_CAP)
    assert all(w.window.start <= p["time"] <= w.window.end for p in plans)
    assert all(p["database"] == "bookbench" and p["application"] not in OWN_APPLICATIONS for p in plans)
    assert all(p["duration_ms"] >= 0 and "Node Type" in p["plan"] for p in plans)
    assert any("appointment_conflicts(" in p["query"] for p in plans)  # nested statements are logged
    assert "Query Parameters" not in path.read_text()


def _run(tmp_path: Path, **kwargs: object) -> tuple[Path, str]:
    out = io.StringIO()
    opts = RunOptions(scenarios_path=TINY, scenarios=["steady"], quick=True, checks=False, notifications=False,
                      out=tmp_path / "out", **kwargs)  # type: ignore[arg-type]
    outcome = execute(opts, narrate_to(Console(file=out, width=200)))
    assert outcome.status == "completed", (outcome.reason, out.getvalue()[-2000:])
    return outcome.run_dir, out.getvalue()


@pytest.mark.integration
def test_a_run_without_a_database_says_not_measured(api: ServiceProcess, tmp_path: Path) -> None:
    run_dir, printed = _run(tmp_path, target_url=api.base_url)
    stmts, waits = read_statements(run_dir / "db" / "statements.json"), read_waits(run_dir / "db" / "waits.json")
    assert stmts is not None and waits is not None
    assert stmts.scenarios["steady"].not_measured == NO_DATABASE and not stmts.scenarios["steady"].statements
    assert waits.scenarios["steady"].waits is None and waits.scenarios["steady"].waits_not_measured == NO_DATABASE
    # the service still reports its own timing
    assert waits.scenarios["steady"].service is not None and waits.scenarios["steady"].service.requests > 0
    assert f"  steady: statements {NO_DATABASE}" in printed
    assert not list(run_dir.glob("db/*_auto_explain.jsonl"))


@pytest.mark.integration
def test_a_deployment_database_is_read_never_reset(api: ServiceProcess, small_db: str, tmp_path: Path) -> None:
    """--dsn with --target-url: the statements are read, the counters of statements run before the run are still
    there afterwards (no pg_stat_statements_reset()), and no auto_explain plan is read."""
    before_the_run = "SELECT count(*) FROM pg_am WHERE amname = $1"  # a statement of its own shape
    fetch(small_db, before_the_run, "x")
    marker = "SELECT calls FROM pg_stat_statements WHERE query = $1 AND dbid = (SELECT oid FROM pg_database " \
             "WHERE datname = current_database())"
    calls_before = fetch(small_db, marker, before_the_run)[0]["calls"]
    assert calls_before >= 1
    run_dir, _ = _run(tmp_path, target_url=api.base_url, dsn=small_db)
    assert fetch(small_db, marker, before_the_run)[0]["calls"] == calls_before
    stmts = read_statements(run_dir / "db" / "statements.json")
    assert stmts is not None
    steady = stmts.scenarios["steady"]
    # the service's own statements are read and labelled; which operations land inside the sampled window of a
    # short run depends on the machine's pace (under -n 4 no booking did), so any of them will do
    labels = {s.label for s in steady.statements}
    assert steady.not_measured is None
    assert labels & {"booking function", "availability", "upcoming lookup", "cancel"}, labels
    assert steady.auto_explain_plans is None and "auto_explain" not in stmts.source
    assert not list(run_dir.glob("db/*_auto_explain.jsonl"))


def test_auto_explain_plans_are_read_from_the_log_and_a_cut_one_is_left_out() -> None:
    plan = '\t{\n\t  "Query Text": "SELECT  1",\n\t  "Plan": {\n\t    "Node Type": "Result"\n\t  }\n\t}'
    log = ("2026-01-01 10:00:00.000 UTC [11] t=1767261600.000 db=bookbench,app=bookbench-service LOG:  duration: "
           f"250.500 ms  plan:\n{plan}\n"
           "2026-01-01 10:00:00.100 UTC [12] t=1767261600.100 db=bookbench,app=a,b LOG:  checkpoint starting\n"
           "2026-01-01 10:00:01.000 UTC [13] t=1767261601.000 db=other,app=psql LOG:  duration: 1.0 ms  plan:\n"
           '\t{\n\t  "Query Text": "SELECT 2",\n\t  "Plan": {\n')
    (found,) = parse_auto_explain(log)
    assert found == {"time": 1767261600.0, "duration_ms": 250.5, "pid": 11, "database": "bookbench",
                     "application": "bookbench-service", "query": "SELECT 1", "plan": {"Node Type": "Result"}}
