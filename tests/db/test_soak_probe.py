"""The soak probe (db/soak_probe.py, pipeline/soak.py): its own connection is a read-only session with timeouts that
refuses a write; on a seeded database every part is read through that connection; a database without the booking
tables says which part was not measured; and a real `bookbench run --scenarios soak` of 12 s, probed every second,
writes its probes and shows the Soak section on its page (too short for a slope per hour: the page says so)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml
from rich.console import Console

from bookbench.artifacts import soak
from bookbench.db.soak_probe import SOAK_APPLICATION_NAME, connect, probe
from bookbench.pipeline import analyse
from bookbench.pipeline.narration import narrate_to
from bookbench.pipeline.run import RunOptions, execute
from bookbench.pipeline.soak import PERIOD_ENV, period

TINY = Path(__file__).resolve().parents[1] / "data" / "scenarios_tiny.yaml"


def _read_only_probe(dsn: str) -> dict[str, Any]:
    """One probe through the probe's own connection (the session the sampler opens on a user's --dsn)."""
    async def main() -> dict[str, Any]:
        conn = await connect(dsn, 10.0)
        try:
            return await probe(conn)
        finally:
            await conn.close()

    return asyncio.run(main())


@pytest.mark.integration
def test_the_probe_connection_refuses_a_write(new_db: Callable[[], str]) -> None:
    dsn = new_db()

    async def main() -> tuple[list[str], str]:
        conn = await connect(dsn, 10.0)
        try:
            settings = [await conn.fetchval(f"SHOW {name}") for name in
                        ("application_name", "default_transaction_read_only", "statement_timeout", "lock_timeout")]
            with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
                await conn.execute("CREATE TABLE written_by_the_probe (id int)")
            return settings, await conn.fetchval("SELECT to_regclass('written_by_the_probe')::text")
        finally:
            await conn.close()

    settings, table = asyncio.run(main())
    assert settings == [SOAK_APPLICATION_NAME, "on", "5s", "1s"] and table is None


@pytest.mark.integration
def test_every_part_is_read_with_selects_only(small_db: str) -> None:
    found = _read_only_probe(small_db)
    assert found["not_measured"] == {}
    assert set(found["tables"]) == set(soak.SOAK_TABLES)
    appointments = found["tables"]["appointments"]
    assert appointments.total_bytes >= appointments.table_bytes + appointments.index_bytes > 0
    assert appointments.n_live_tup is not None and appointments.autovacuum_count is not None
    assert isinstance(found["outbox_pending"], int) and isinstance(found["connections"], dict)


@pytest.mark.integration
def test_a_database_without_the_booking_tables_says_what_was_not_measured(new_db: Callable[[], str]) -> None:
    found = _read_only_probe(new_db())
    assert "tables" not in found and "outbox_pending" not in found
    assert found["not_measured"]["tables"] == ("not measured: no table appointments, contacts, notification_outbox "
                                               "in this database")
    assert found["not_measured"]["outbox"] == "not measured: no notification_outbox table in this database"
    assert "connections" in found


def test_the_period_can_be_forced_for_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    assert period(10.0) == 10.0
    monkeypatch.setenv(PERIOD_ENV, "0.5")
    assert period(10.0) == 0.5
    monkeypatch.setenv(PERIOD_ENV, "soon")
    assert period(10.0) == 10.0


@pytest.mark.integration
@pytest.mark.slow
def test_a_short_soak_run_records_probes_and_shows_its_section(new_db: Callable[[], str], tmp_path: Path) -> None:
    spec = yaml.safe_load(TINY.read_text())
    spec["scenarios"]["soak"] = {"default": False, "warmup_s": 2, "probe_every_s": 1,
                                 "stages": [{"duration_s": 12, "users": 3}]}
    scenario_file = tmp_path / "scenarios.yaml"
    scenario_file.write_text(yaml.safe_dump(spec))
    out = io.StringIO()
    opts = RunOptions(scenarios_path=scenario_file, scenarios=["soak"], checks=False, notifications=False,
                      out=tmp_path / "out", dsn=new_db(), own_database=True)  # its own database: no lease to share
    outcome = execute(opts, narrate_to(Console(file=out, width=200)))
    assert outcome.status == "completed", (outcome.reason, out.getvalue()[-2000:])
    probes = soak.read(soak.soak_file(outcome.run_dir, "soak"))
    assert len(probes) >= 8  # one a second for 12 s, and one as the load stopped; a busy machine may miss a few
    last = probes[-1]
    assert last.rss_bytes and last.service_processes and last.tables and "appointments" in last.tables
    assert last.outbox_pending is not None and last.connections and last.not_measured == {}
    analyse.analyse_and_render(outcome.run_dir)  # as `bookbench run` does after the load
    html = (outcome.run_dir / "report.html").read_text()
    assert '<h3 id="soak-soak">Soak</h3>' in html and "Latency drift:" in html
    # 10 s of steady state: first -> last values, no chart over time, no slope per hour
    assert "too short to extrapolate per hour (" in html and "s of steady state; 5 minutes needed)" in html
    assert "ms per hour" not in html and "MB per hour" not in html
    assert f"{len(probes)} probes, one every 1 s (db/soak_soak.jsonl)" in html
    assert "s of probes: charts over time are drawn from 60 s" in html
