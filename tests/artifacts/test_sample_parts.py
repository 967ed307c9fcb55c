"""Samples format 3 (artifacts/sample_parts.py): parts written whole or not at all, sealed into one file per process
with the input rows unchanged, and verify() naming a file that is missing, cut, changed or unrecorded."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bookbench.artifacts import sample_parts
from bookbench.artifacts.sample_compaction import Cancelled
from bookbench.artifacts.sample_parts import PartWriter, SealedFile, files, seal, verify
from bookbench.artifacts.samples import Sample, WriteFailed

REL = "samples/s1"


def _rows(n: int, worker: str, t0: float = 1_700_000_000.0) -> list[Sample]:
    return [(t0 + i * 0.01, 1.5 + i % 7 * 0.25, "book" if i % 3 else "lookup", "POST" if i % 3 else "GET",
             200 if i % 5 else 409, int(i % 11 != 0), "" if i % 11 else "HTTP 500: boom", 120 + i % 4, 10 + i % 3,
             worker, (t0 + i * 0.01 - 0.001) if i % 2 else None) for i in range(n)]


def _read_all(paths: list[Path]) -> list[tuple[object, ...]]:
    table = pa.concat_tables([pq.read_table(p) for p in paths])
    return sorted(zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True))


def _folder(tmp_path: Path) -> Path:
    return tmp_path / "run" / REL


def _flushed(folder: Path, process: str, parts: int, rows: int) -> PartWriter:
    """A writer that has written `parts` parts of `rows` rows each."""
    writer = PartWriter(folder, process)
    for _ in range(parts):
        writer.extend(_rows(rows, process))
        writer.flush()
    return writer


def test_write_flush_seal_round_trip(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    local, w1 = PartWriter(folder, "local"), PartWriter(folder, "host:1/w")
    expected = _rows(250, "local") + _rows(40, "w1", t0=1_700_000_100.0)
    local.extend(expected[:100])
    assert local.flush() == 100
    for row in expected[100:250]:
        local.add(row)
    local.flush()
    w1.extend(expected[250:])
    w1.flush()
    assert local.flush() == 0  # nothing buffered: no empty part
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["host_1_w-000000.parquet", "local-000000.parquet", "local-000001.parquet"]
    assert _read_all(files(folder)) == sorted(expected)

    sealed = seal(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["host_1_w.parquet", "local.parquet"]
    assert [(s.path, s.rows) for s in sealed] == [(f"{REL}/host_1_w.parquet", 40), (f"{REL}/local.parquet", 250)]
    assert _read_all(files(folder)) == sorted(expected)
    assert seal(folder) == sealed  # sealing again changes nothing
    paths, status, detail, rows = verify(tmp_path / "run", REL, sealed)
    assert (status, rows, len(paths)) == ("verified", 290, 2), detail


def test_strings_are_dictionary_encoded_and_format_is_tagged(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    writer = PartWriter(folder, "local")
    writer.extend(_rows(30, "local"))
    writer.flush()
    (path,) = seal(folder)
    parquet = pq.ParquetFile(tmp_path / "run" / path.path)
    schema = parquet.schema_arrow
    assert schema.names == list(sample_parts.SCHEMA.names)
    for column in ("name", "method", "error", "worker"):
        assert pa.types.is_dictionary(schema.field(column).type)
        # the file itself stores the column dictionary-encoded, not only the Arrow schema saying so
        encodings = parquet.metadata.row_group(0).column(schema.get_field_index(column)).encodings
        assert any("DICTIONARY" in e for e in encodings), encodings
    assert (schema.metadata or {})[b"bookbench.samples_format"] == b"3"
    assert pq.read_table(tmp_path / "run" / path.path).column("intended").null_count == 15


def test_a_killed_writer_leaves_whole_parts_readable_and_verify_names_a_cut_one(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    _flushed(folder, "w1", 3, 20)
    # a kill during the fourth flush: its `.tmp` cut short never took a final name
    whole = (folder / "w1-000000.parquet").read_bytes()
    (folder / "w1-000003.parquet.tmp").write_bytes(whole[:len(whole) // 2])
    paths, status, detail, rows = verify(tmp_path / "run", REL, None)
    assert (status, rows, len(paths)) == ("not verified", 60, 3), detail
    assert "1 part(s) a killed process had not finished" in detail
    # a final part cut short (something outside bookbench did it: bookbench renames only whole files)
    (folder / "w1-000001.parquet").write_bytes(whole[:100])
    paths, status, detail, rows = verify(tmp_path / "run", REL, None)
    assert status == "damaged" and rows == 40 and len(paths) == 2
    assert "samples/s1/w1-000001.parquet is not a readable Parquet file (100 bytes)" in detail
    # sealing keeps the rows that read, and the cut part for verify to name
    sealed = seal(folder)
    assert [s.rows for s in sealed] == [40]
    assert not list(folder.glob("*.tmp"))
    _, status, detail, rows = verify(tmp_path / "run", REL, sealed)
    assert status == "damaged" and rows == 40
    assert "w1-000001.parquet is not a readable Parquet file" in detail


def test_verify_names_missing_changed_and_unrecorded_files(tmp_path: Path) -> None:
    run, folder = tmp_path / "run", _folder(tmp_path)
    for process in ("local", "w2"):
        writer = PartWriter(folder, process)
        writer.extend(_rows(10, process))
        writer.flush()
    sealed = seal(folder)
    fake = SealedFile(path=f"{REL}/w9.parquet", rows=5, sha256="0" * 64)
    assert verify(run, REL, [*sealed, fake])[1:3] == (
        "damaged", f"{REL}/w9.parquet is missing (5 rows recorded); 20 rows readable")
    wrong_rows = [sealed[0].model_copy(update={"rows": 11}), sealed[1]]
    assert "local.parquet holds 10 rows; 11 were written" in verify(run, REL, wrong_rows)[2]
    changed = [sealed[0].model_copy(update={"sha256": "f" * 64}), sealed[1]]
    assert "local.parquet was changed after the run" in verify(run, REL, changed)[2]
    assert "w2.parquet was not recorded when the folder was sealed" in verify(run, REL, sealed[:1])[2]
    assert verify(run, "samples/nope", None)[1:3] == ("damaged", "samples/nope is missing")


def test_an_interrupted_seal_is_never_counted_twice(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    _flushed(folder, "local", 2, 10)
    parts = sorted(folder.iterdir())
    kept = {p.name: p.read_bytes() for p in parts}
    seal(folder)
    for name, data in kept.items():  # as if killed between the merged file's rename and the parts' removal
        (folder / name).write_bytes(data)
    assert sum(sample_parts.rows_in(p) for p in files(folder)) == 20
    (sealed,) = seal(folder)
    assert sealed.rows == 20 and [p.name for p in folder.iterdir()] == ["local.parquet"]
    # a writer started again under the same name continues after the parts it finds, and a new seal appends
    again = PartWriter(folder, "local")
    again.extend(_rows(5, "local"))
    again.flush()
    (resealed,) = seal(folder)
    assert resealed.rows == 25


def test_a_refused_write_names_the_part_and_leaves_no_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _folder(tmp_path)
    writer = PartWriter(folder, "local")
    writer.extend(_rows(5, "local"))

    def full(*_: object, **__: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)  # the rename that would publish the part
    with pytest.raises(WriteFailed) as failed:
        writer.flush()
    assert failed.value.describe(tmp_path / "run") == (
        "disk full writing samples/s1/local-000000.parquet (No space left on device)")
    assert list(folder.iterdir()) == []


def _parts_of(folder: Path, process: str, n: int, rows: int = 10) -> tuple[PartWriter, list[Path], list[Sample]]:
    """A writer that compacts nothing by itself, its `n` parts, and every row they hold (each part's rows its own)."""
    writer = PartWriter(folder, process, compact_every=0)
    expected: list[Sample] = []
    for k in range(n):
        rows_k = _rows(rows, process, t0=1_700_000_000.0 + 100 * k)
        expected += rows_k
        writer.extend(rows_k)
        writer.flush()
    return writer, sorted(folder.iterdir()), expected


def test_every_n_parts_become_a_segment_and_every_n_segments_a_bigger_one(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    writer = PartWriter(folder, "local", compact_every=3)
    expected: list[Sample] = []
    for k in range(11):
        rows_k = _rows(4, "local", t0=1_700_000_000.0 + k)
        expected += rows_k
        writer.extend(rows_k)
        writer.flush()
        writer.compaction.drain()  # as if each flush came a second after the last: every merge due is done
    # parts 0-8 went into three segments, and those three into one; 9 and 10 wait for a third
    assert sorted(p.name for p in folder.iterdir()) == [
        "local-000009.parquet", "local-000010.parquet", "local-seg000000_000008.parquet"]
    assert writer.compaction.merges == 4 and writer.compaction.failed is None
    assert _read_all(files(folder)) == sorted(expected)
    held = sample_parts._merged_parts(folder / "local-seg000000_000008.parquet")
    assert held == {f"local-{k:06d}.parquet" for k in range(9)} | {
        "local-seg000000_000002.parquet", "local-seg000003_000005.parquet", "local-seg000006_000008.parquet"}
    (sealed,) = seal(folder)
    assert sealed.rows == 44 and [p.name for p in folder.iterdir()] == ["local.parquet"]
    assert _read_all(files(folder)) == sorted(expected)
    # a writer started again under the same name takes neither a part's nor a segment's name the sealed file holds
    assert PartWriter(folder, "local").seq == 11


def _go_on() -> None:
    pass


def _kill_states(folder: Path, step: str) -> list[Sample]:
    """The folder as a kill at `step` of a compaction leaves it (parts 0-5 of `w1`, merged 3 by 3, then the two
    segments into one), and every row written."""
    writer, parts, expected = _parts_of(folder, "w1", 6)
    kept = {p.name: p.read_bytes() for p in parts}
    first = writer._segment(parts[:3], _go_on)
    if step.startswith("1"):  # killed during the first segment's merge: the parts come back as they were then
        back = {"1 tmp written": parts[:3], "1 renamed": parts[:3], "1 parts half removed": parts[1:3]}[step]
        for p in back:
            p.write_bytes(kept[p.name])
        if step == "1 tmp written":  # the segment's `.tmp`, cut short: never renamed
            data = first.read_bytes()
            first.with_name(first.name + ".tmp").write_bytes(data[:len(data) // 2])
            first.unlink()
        return expected
    second = writer._segment(parts[3:], _go_on)
    segments = {s.name: s.read_bytes() for s in (first, second)}
    both = writer._segment([first, second], _go_on)
    if step == "2 tmp written":
        data = both.read_bytes()
        both.with_name(both.name + ".tmp").write_bytes(data[:len(data) // 2])
        both.unlink()
    back = {"2 tmp written": [first, second], "2 renamed": [first, second], "2 segments half removed": [second],
            "2 renamed, a part of the first left": [first]}.get(step, [])
    for s in back:
        s.write_bytes(segments[s.name])
    if step == "2 renamed, a part of the first left":  # the first segment's removal of its parts was cut too
        parts[0].write_bytes(kept[parts[0].name])
    return expected


@pytest.mark.parametrize("step", ["1 tmp written", "1 renamed", "1 parts half removed", "2 tmp written", "2 renamed",
                                  "2 segments half removed", "2 renamed, a part of the first left", "2 done"])
def test_a_kill_at_any_step_of_a_compaction_reads_every_row_once(tmp_path: Path, step: str) -> None:
    run, folder = tmp_path / "run", _folder(tmp_path)
    expected = _kill_states(folder, step)
    assert _read_all(files(folder)) == sorted(expected)
    paths, status, detail, rows = verify(run, REL, None)
    assert (status, rows) == ("not verified", 60), detail
    assert "had not finished" not in detail  # a merge's `.tmp` lost nothing: its inputs are all still there
    assert sample_parts.export_csv(paths, tmp_path / "s.csv.gz") == 60
    # a process started again under the same name continues after every part any file holds
    assert PartWriter(folder, "w1").seq == 6
    (sealed,) = seal(folder)
    assert sealed.rows == 60 and [p.name for p in folder.iterdir()] == ["w1.parquet"]
    assert _read_all(files(folder)) == sorted(expected)
    assert verify(run, REL, [sealed])[1:4:2] == ("verified", 60)


def test_a_merge_given_up_leaves_its_inputs_as_they_were(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    writer, parts, expected = _parts_of(folder, "local", 3)

    def stop() -> None:
        raise Cancelled

    with pytest.raises(Cancelled):
        writer._segment(parts, stop)
    assert sorted(folder.iterdir()) == parts  # no segment, no `.tmp`, every part
    assert _read_all(files(folder)) == sorted(expected)
