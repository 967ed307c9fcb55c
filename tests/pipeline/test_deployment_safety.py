"""A run against a database bookbench did not create leaves it as it was: no seeding over data, indexes as found
unless a set is named, only the run's own rows deleted (and only where allowed), one measuring command per
database, new rows attributed to the run that asked for them; the warm-up sends only what the mix sends."""

from __future__ import annotations

import asyncio
import datetime as dt
import http.server
import io
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import pytest
from rich.console import Console
from typer.testing import CliRunner

from bookbench.artifacts import manifest as manifest_file
from bookbench.cli.app import app
from bookbench.config.scenarios import TaskMix
from bookbench.db import audit, indexes
from bookbench.db.lease import DatabaseBusy, database_lease
from bookbench.load.warmup import warm_up
from bookbench.pipeline import analyse
from bookbench.pipeline.narration import narrate_to
from bookbench.pipeline.run import RunOptions, execute
from bookbench.pipeline.stack import ServiceProcess
from bookbench.target.bind import bind
from tests.budget import budget
from tests.conftest import SMALL, fetch, run_sql, seeded

pytestmark = [pytest.mark.integration]

TINY = Path(__file__).resolve().parents[1] / "data" / "scenarios_tiny.yaml"
# the deployment's own bookings: far beyond the 120 days the load books into, so that they overlap nothing
THEIR_ROWS = """
INSERT INTO appointments (org_id, contact_id, provider_id, scheduled_at, duration_minutes)
SELECT 1, c.id, p.id, date_trunc('day', now()) + interval '400 days' + g * interval '1 hour', 30
  FROM generate_series(1, 5) g,
       LATERAL (SELECT id FROM contacts WHERE org_id = 1 ORDER BY id LIMIT 1) c,
       LATERAL (SELECT id FROM providers WHERE org_id = 1 ORDER BY id LIMIT 1) p
RETURNING id
"""


# the rows a deployment held before the run, as they were: id, status and time of each
_DIGEST = ("SELECT md5(string_agg(id || ':' || status || ':' || scheduled_at::text, ',' ORDER BY id)) AS digest "
           "FROM appointments WHERE id <= 3005")


def _index_names(dsn: str) -> list[str]:
    return sorted(s.name for s in run_sql(dsn, indexes.status))


def _count(dsn: str) -> int:
    return int(fetch(dsn, "SELECT count(*) AS n FROM appointments")[0]["n"])


@pytest.fixture
def deployment(new_db: Callable[[], str], tmp_path: Path) -> Iterator[tuple[str, ServiceProcess, list[int]]]:
    """Someone's deployment: bookbench's schema and data, the seed index set, rows of their own, their service."""
    dsn = seeded(new_db())
    run_sql(dsn, lambda c: indexes.apply(c, "seed"))
    theirs = [int(r["id"]) for r in fetch(dsn, THEIR_ROWS)]
    svc = ServiceProcess(dsn, log_path=tmp_path / "their-service.log")
    svc.start()
    try:
        yield dsn, svc, theirs
    finally:
        svc.stop()


def _run(tmp_path: Path, **kwargs: object) -> tuple[manifest_file.Manifest, str, str]:
    out = io.StringIO()
    opts = RunOptions(scenarios_path=TINY, scenarios=["steady"], quick=True, checks=False, notifications=False,
                      out=tmp_path / "out", **kwargs)  # type: ignore[arg-type]
    outcome = execute(opts, narrate_to(Console(file=out, width=200)))
    return manifest_file.read(outcome.run_dir), outcome.status + ": " + str(outcome.reason), out.getvalue()


def test_a_run_against_a_deployment_changes_no_index_and_deletes_nothing(
        deployment: tuple[str, ServiceProcess, list[int]], tmp_path: Path) -> None:
    dsn, svc, theirs = deployment
    before_idx, before_n = _index_names(dsn), _count(dsn)
    rows_before = fetch(dsn, _DIGEST)[0]["digest"]
    man, status, printed = _run(tmp_path, target_url=svc.base_url, dsn=dsn)
    assert status.startswith("completed"), status
    # every row that was there is as it was, and nothing wrote on their behalf: no rolled-back write cost, no
    # EXPLAIN ANALYZE of a write, no VACUUM or CHECKPOINT
    assert fetch(dsn, _DIGEST)[0]["digest"] == rows_before
    assert man.write_cost is None and man.queries is not None and not {"insert", "cancel"} & set(man.queries)
    assert all("vacuum and checkpoint" in " ".join(e.settle["skipped"]) for e in man.scenarios.values()
               if e.settle is not None)
    assert _index_names(dsn) == before_idx  # the file's default set (recommended) was not applied
    assert man.index_set.name == "as-found" and not man.index_set.applied
    assert man.index_set.before == man.index_set.after == before_idx and not man.index_set.dropped
    assert "indexes left as found" in printed
    assert {r["id"] for r in fetch(dsn, "SELECT id FROM appointments WHERE id = ANY($1::bigint[])", theirs)} == set(
        theirs)
    assert man.database_role == "deployment" and man.cleanup is not None and not man.cleanup.allowed
    assert man.cleanup.own_rows > 0 and man.cleanup.deleted == 0
    assert _count(dsn) == before_n + man.cleanup.own_rows  # its own bookings left in place, nothing else changed


def test_cleanup_deletes_exactly_the_runs_own_bookings(
        deployment: tuple[str, ServiceProcess, list[int]], tmp_path: Path) -> None:
    dsn, svc, theirs = deployment
    before_n = _count(dsn)
    man, status, _ = _run(tmp_path, target_url=svc.base_url, dsn=dsn, cleanup=True)
    assert status.startswith("completed"), status
    assert man.cleanup is not None and man.cleanup.allowed and man.cleanup.deleted == man.cleanup.own_rows > 0
    assert _count(dsn) == before_n
    assert len(fetch(dsn, "SELECT id FROM appointments WHERE id = ANY($1::bigint[])", theirs)) == len(theirs)


def test_naming_a_set_on_the_command_line_applies_it_and_records_the_change(
        deployment: tuple[str, ServiceProcess, list[int]], tmp_path: Path) -> None:
    dsn, svc, _ = deployment
    before_idx = _index_names(dsn)
    man, status, printed = _run(tmp_path, target_url=svc.base_url, dsn=dsn, index_set="recommended")
    assert status.startswith("completed"), status
    assert man.index_set.applied and man.index_set.before == before_idx
    assert man.index_set.after == _index_names(dsn) != before_idx
    assert set(man.index_set.dropped) == set(before_idx) - set(man.index_set.after)
    assert "bookbench changed this database's indexes" in printed
    (run_dir,) = (tmp_path / "out").iterdir()
    page = analyse.analyse_and_render(run_dir).page
    assert page is not None and "bookbench changed this deployment's indexes" in page.read_text()


def test_a_second_command_on_a_measured_database_is_refused_naming_the_first(
        new_db: Callable[[], str], tmp_path: Path) -> None:
    dsn = new_db()
    with database_lease(dsn, "bookbench run, folder /results/first-run"):
        with (pytest.raises(DatabaseBusy, match=r"pid \d+, bookbench run, folder /results/first-run"),
              database_lease(dsn, "second")):
            pass
        _, status, _ = _run(tmp_path, dsn=dsn)
        assert status.startswith("failed") and "/results/first-run" in status
    assert not fetch(dsn, "SELECT 1 FROM pg_tables WHERE tablename = 'appointments'")  # nothing was seeded
    with database_lease(dsn, "after"):  # released with its holder
        pass


def test_a_database_with_data_bookbench_did_not_seed_is_never_seeded(
        new_db: Callable[[], str], tmp_path: Path) -> None:
    dsn = new_db()
    fetch(dsn, "CREATE TABLE appointments (id bigint PRIMARY KEY, note text)")
    fetch(dsn, "INSERT INTO appointments VALUES (1, 'a real patient')")
    _, status, _ = _run(tmp_path, dsn=dsn)
    assert status.startswith("failed") and "did not seed" in status
    assert [dict(r) for r in fetch(dsn, "SELECT * FROM appointments")] == [{"id": 1, "note": "a real patient"}]
    assert not fetch(dsn, "SELECT 1 FROM pg_tables WHERE tablename = 'bookbench_meta'")


def test_reconciliation_counts_only_rows_the_run_asked_for(new_db: Callable[[], str]) -> None:
    dsn = seeded(new_db())
    id_before = run_sql(dsn, audit.max_appointment_id)
    row = fetch(dsn, "SELECT contact_id, provider_id, org_id FROM appointments WHERE org_id = 1 LIMIT 1")[0]
    insert = ("INSERT INTO appointments (org_id, contact_id, provider_id, scheduled_at, duration_minutes) "
              "VALUES ($1, $2, $3, $4, 30) RETURNING id")
    args = (row["org_id"], row["contact_id"], row["provider_id"])
    day = dt.datetime(2031, 1, 1, 9, tzinfo=dt.UTC)
    acked = fetch(dsn, insert, *args, day)[0]["id"]
    ours = fetch(dsn, insert, *args, day + dt.timedelta(days=1))[0]["id"]  # sent by the run, never acknowledged
    fetch(dsn, insert, *args, day + dt.timedelta(days=2))  # another writer's booking
    attempts = [(row["contact_id"], row["provider_id"], "2031-01-01T09:00:00+00:00"),
                (row["contact_id"], row["provider_id"], "2031-01-02T09:00:00+00:00")]
    recon = run_sql(dsn, lambda c: audit.reconcile(c, [acked], id_before, attempts))
    assert (recon["lost"], recon["phantom"], recon["other_writers"]) == (0, 1, 1)
    assert recon["phantom_all"] == [ours] and not recon["ok"]
    # a reader beside the run (no attempts of its own that match) never turns another's rows into phantoms
    clean = run_sql(dsn, lambda c: audit.reconcile(c, [acked], id_before, attempts[:1]))
    assert clean["ok"] and clean["other_writers"] == 2


@pytest.mark.parametrize("protocol", ["rest", "vapi"])
def test_warm_up_sends_only_what_the_mix_sends(api: ServiceProcess, small_db: str,
                                               protocol: Literal["rest", "vapi"]) -> None:
    before = _count(small_db)
    target = bind(None, protocol, SMALL)
    reads = TaskMix(protocol=protocol, weights={"checkAvailability": 1, "lookupUpcomingAppointment": 1})
    done = asyncio.run(warm_up(api.base_url, target, reads))
    assert done.sent > 0 and done.booked == [] and _count(small_db) == before
    assert set(done.outcomes) == {"checkAvailability", "lookupUpcomingAppointment"}
    writes = TaskMix(protocol=protocol, weights={"bookClinicAppointment": 1})
    booked = [int(i) for i in asyncio.run(warm_up(api.base_url, target, writes)).booked]
    assert booked and _count(small_db) == before + len(booked)
    run_sql(small_db, lambda c: audit.delete_own(c, booked))
    assert _count(small_db) == before


class _NotFound(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real server: the warm-up opens 24 connections at once
    def do_GET(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))  # a body left unread would be the next request
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_GET

    def log_message(self, *_: object) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    request_queue_size = 128  # the default 5 resets connections of a 24-wide warm-up


def test_no_report_still_exits_on_the_judgement(tmp_path: Path) -> None:
    """Every request fails (404): NO-GO, exit 1, with or without --no-report."""
    server = _Server(("127.0.0.1", 0), _NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bookbench", "run", "--scenario-file", str(TINY), "--scenarios", "steady",
             "--quick", "--skip-checks", "--no-report", "--out", str(tmp_path),
             "--target-url", f"http://127.0.0.1:{server.server_address[1]}"],
            capture_output=True, text=True, timeout=budget(180))
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 1, done.stdout + done.stderr
    assert "NO-GO" in done.stdout and "not written (--no-report)" in done.stdout
    assert not list(tmp_path.rglob("report.html"))


def test_multi_run_commands_apply_their_default_sets_only_to_their_own_database() -> None:
    dsn = "postgresql://u@127.0.0.1:1/theirs"
    for argv in (["compare"], ["sweep"], ["capacity"], ["calibrate"]):
        result = CliRunner().invoke(app, [*argv, "--dsn", dsn])
        assert result.exit_code == 2, (argv, result.output)
        assert "--set" in result.output and "name them on the command line" in result.output
    result = CliRunner().invoke(app, ["run", "--target-url", "http://127.0.0.1:1", "--index-set", "seed"])
    assert result.exit_code == 2 and "needs --dsn" in result.output


def test_seed_and_reindex_wait_for_nobody_while_a_run_measures(new_db: Callable[[], str]) -> None:
    dsn = seeded(new_db())
    with database_lease(dsn, "bookbench run, folder /results/busy"):
        for argv in (["db", "seed", "--orgs", "3", "--providers-per-org", "3", "--contacts", "300",
                      "--appointments", "3000", "--seed", "7"], ["indexes", "apply", "seed"], ["indexes", "drop"]):
            result = CliRunner().invoke(app, [*argv, "--dsn", dsn, "--yes"])
            assert result.exit_code == 3, (argv, result.output)
            assert "in use by another bookbench command" in result.output and "/results/busy" in result.output
    assert _index_names(dsn) == []
