"""notifications/<scenario>.json and its outbox rows: format 2 (rows in Parquet beside the JSON) round trip, format 1
(rows inside the JSON) streamed out whatever the chunk boundaries, and bad files named, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from bookbench.artifacts import notifications as facts_file
from bookbench.artifacts.notifications import NotificationFacts, OutboxFile
from bookbench.errors import ArtifactError

ROW: dict[str, Any] = {"appointment_id": 7, "channel": "sms", "kind": "confirm", "dedup_key": "sms-confirm-7",
                       "created_at": 1795823423.949329, "status": "sent", "attempts": 1, "sent_at": None,
                       "conflict": False, "last_error": 'a "quoted" error, with } and ] inside'}


def _rows(n: int) -> list[dict[str, Any]]:
    return [{**ROW, "appointment_id": i, "dedup_key": f"sms-confirm-{i}", "created_at": 1795823423.949329 + i / 7,
             "sent_at": None if i % 2 else 1795823424.0 + i} for i in range(n)]


def _header(rows: int) -> NotificationFacts:
    return NotificationFacts(scenario="s", dispatchers=2, faults={"sms": {"outages": [{"start_s": 1, "length_s": 2}]}},
                             load_start=1.0, load_end=2.5, drain_timeout_s=30, drained_at=None,
                             backlog=[(1.25, 3), (2.0, 0)], breaker=[],
                             outbox=OutboxFile(file="s_outbox.parquet", rows=rows))


def _format_1(path: Path, rows: list[dict[str, Any]], **over: Any) -> Path:
    doc = {**_header(len(rows)).model_dump(mode="json"), "format_version": 1, "outbox": rows, **over}
    path.write_text(json.dumps(doc, indent=1))
    return path


def test_format_2_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    with facts_file.OutboxWriter(facts_file.outbox_file(path)) as writer:
        writer.write(_rows(3))
        writer.write(_rows(5)[3:])
    facts_file.write(path, _header(writer.rows))
    facts = facts_file.read(path, tmp_path / "unused")
    assert facts == _header(5) and facts_file.outbox_path(path, facts) == tmp_path / "s_outbox.parquet"
    assert pq.read_table(tmp_path / "s_outbox.parquet").to_pylist() == _rows(5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json", "s_outbox.parquet"]


@pytest.mark.parametrize("chunk", [3, 64, 1 << 22])
def test_format_1_rows_stream_out_whatever_the_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      chunk: int) -> None:
    monkeypatch.setattr(facts_file, "_CHUNK", chunk)
    monkeypatch.setattr(facts_file, "BATCH_ROWS", 4)  # several batches
    path = _format_1(tmp_path / "s.json", _rows(10))
    facts = facts_file.read(path, tmp_path)
    assert facts.format_version == 1 and facts.outbox.rows == 10 and facts.backlog == [(1.25, 3), (2.0, 0)]
    assert pq.read_table(facts_file.outbox_path(path, facts)).to_pylist() == _rows(10)


def test_an_empty_outbox_reads_in_both_formats(tmp_path: Path) -> None:
    one = facts_file.read(_format_1(tmp_path / "one.json", []), tmp_path)
    path = tmp_path / "two.json"
    with facts_file.OutboxWriter(facts_file.outbox_file(path)):
        pass
    facts_file.write(path, _header(0).model_copy(update={"outbox": OutboxFile(file="two_outbox.parquet", rows=0)}))
    two = facts_file.read(path, tmp_path)
    for facts, at in ((one, tmp_path / "one.json"), (two, path)):
        assert facts.outbox.rows == 0 and pq.read_table(facts_file.outbox_path(at, facts)).num_rows == 0


@pytest.mark.parametrize(("change", "said"), [
    (lambda rows, p: _format_1(p, [{k: v for k, v in rows[0].items() if k != "kind"}]),
     "s.json: outbox.0: field(s) missing: kind"),
    (lambda rows, p: _format_1(p, [*rows, {**rows[0], "colour": "red"}]),
     "s.json: outbox.2: unknown field(s): colour"),
    (lambda rows, p: _format_1(p, [{**rows[0], "attempts": "many"}]), "s.json: outbox rows 0-0:"),
    (lambda rows, p: _format_1(p, [{**rows[0], "channel": None}]), "channel missing (null) in 1 row(s)"),
    # JSON has no NaN: through Arrow's JSON reader it would arrive as a null ("never sent"), so it is refused
    (lambda rows, p: _format_1(p, [rows[0], {**rows[1], "sent_at": float("nan")}]),
     "s.json: outbox rows 0-1: sent_at is nan: not a finite number"),
    (lambda rows, p: p.write_text(_format_1(p, rows).read_text()[:400]), "s.json is not valid JSON"),
    (lambda rows, p: _format_1(p, rows, format_version=9), "has format_version 9"),
    (lambda rows, p: _format_1(p, rows, dispatchers="two"), "s.json: dispatchers:"),
    (lambda rows, p: p.write_bytes(b"\xff\xfe{}"), "s.json is not UTF-8 text"),
])
def test_a_bad_format_1_file_is_named(tmp_path: Path, change: Any, said: str) -> None:
    path = tmp_path / "s.json"
    change(_rows(2), path)
    with pytest.raises(ArtifactError) as err:
        facts_file.read(path, tmp_path)
    assert said in str(err.value)
    assert not list(tmp_path.glob("*.tmp"))  # no half-written rows left behind


def test_the_outbox_writer_names_a_field_it_does_not_know(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown field\(s\) colour"), \
            facts_file.OutboxWriter(facts_file.outbox_file(tmp_path / "s.json")) as writer:
        writer.write([*_rows(2), {**_rows(1)[0], "colour": "red"}])
    assert not list(tmp_path.glob("*.parquet*"))  # a failed write leaves nothing


def test_format_2_rows_missing_or_short_are_named(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    facts_file.write(path, _header(2))
    with pytest.raises(ArtifactError, match=r"s_outbox\.parquet does not exist"):
        facts_file.read(path, tmp_path)
    with facts_file.OutboxWriter(facts_file.outbox_file(path)) as writer:
        writer.write(_rows(1))
    with pytest.raises(ArtifactError, match=r"holds 1 rows where .* recorded 2"):
        facts_file.read(path, tmp_path)
    facts_file.write(path, _header(1).model_copy(update={"outbox": OutboxFile(file="../s_outbox.parquet", rows=1)}))
    with pytest.raises(ArtifactError, match=r"outbox\.file: '\.\./s_outbox\.parquet' is not a file name"):
        facts_file.read(path, tmp_path)


def test_a_failed_write_leaves_no_rows_file(tmp_path: Path) -> None:
    target = tmp_path / "s_outbox.parquet"
    with pytest.raises(RuntimeError), facts_file.OutboxWriter(target) as writer:
        writer.write(_rows(2))
        raise RuntimeError("the database went away mid-stream")
    assert list(tmp_path.iterdir()) == []
