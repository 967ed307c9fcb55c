"""record_facts streams a scenario's outbox rows out of PostgreSQL a batch at a time into Parquet (never all in
memory), writes the JSON that names them last, and records exactly what the database holds."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from bookbench.artifacts import notifications as facts_file
from bookbench.config.notifications import Faults
from bookbench.db.schema import apply_schema
from bookbench.pipeline import notify
from tests.conftest import fetch, run_sql

pytestmark = pytest.mark.integration

QUEUE = """
    INSERT INTO notification_outbox (appointment_id, org_id, channel, kind, dedup_key, payload, status, attempts,
                                     sent_at, conflict, last_error)
    SELECT i / 2 + 1, 1, CASE WHEN i % 2 = 0 THEN 'sms' ELSE 'calendar' END,
           CASE WHEN i % 2 = 0 THEN 'confirm' ELSE 'insert' END, 'k' || i, '{}'::jsonb,
           CASE WHEN i % 97 = 0 THEN 'dead' ELSE 'sent' END, 1 + i % 3,
           CASE WHEN i % 5 = 0 THEN NULL ELSE clock_timestamp() END, i % 11 = 0,
           CASE WHEN i % 7 = 0 THEN 'HTTP 503' END
    FROM generate_series(0, 2599) AS i"""


def test_outbox_rows_are_streamed_in_batches_and_named_by_the_json(
        new_db: Callable[[], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dsn = new_db()
    run_sql(dsn, apply_schema)
    run_sql(dsn, lambda c: c.execute(QUEUE))
    monkeypatch.setattr(facts_file, "BATCH_ROWS", 1000)
    path = tmp_path / "burst.json"
    # the rows of appointments after id 100 are this scenario's (200 rows before them are an earlier one's)
    facts = notify.record_facts(dsn, path, "burst", 2, Faults(), 100, (1.0, 2.0), 30.0, (2.5, None), [(1.0, 0)], {})
    assert facts.outbox.file == "burst_outbox.parquet" and facts.outbox.rows == 2400
    assert json.loads(path.read_text())["outbox"] == {"file": "burst_outbox.parquet", "rows": 2400}
    rows = tmp_path / "burst_outbox.parquet"
    assert pq.ParquetFile(rows).metadata.num_row_groups == 3  # three batches of at most 1,000 rows
    written = pq.read_table(rows).to_pylist()
    columns = ("appointment_id", "channel", "kind", "dedup_key", "status", "attempts", "conflict", "last_error")
    expected = [tuple(r) for r in fetch(dsn, f"SELECT {', '.join(columns)} FROM notification_outbox "
                                             "WHERE appointment_id > 100 ORDER BY id")]
    assert [tuple(r[c] for c in columns) for r in written] == expected
    assert facts_file.read(path, tmp_path) == facts
    assert sorted(p.name for p in tmp_path.iterdir()) == ["burst.json", "burst_outbox.parquet"]
