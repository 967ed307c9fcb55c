"""The one atomic writer (artifacts/files.py) and the small per-file modules built on it: whole files, no temp
file left by a failed write, the space reserve released once on a full disk."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from bookbench.artifacts import capacity_steps, explain, pages, pids, progress
from bookbench.artifacts.files import RESERVE_NAME, append_text, reserve_space, write_file, write_json
from bookbench.errors import EnvironmentFailure


def test_text_and_bytes_are_written_whole_with_no_temp_file(tmp_path: Path) -> None:
    write_file(tmp_path / "a.txt", "text")
    write_file(tmp_path / "b.bin", b"\x00\x01")
    write_file(tmp_path / "a.txt", "replaced")
    assert (tmp_path / "a.txt").read_text() == "replaced"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin"]


def test_a_failed_write_names_the_file_and_leaves_no_temp_file(tmp_path: Path) -> None:
    # a directory where the file should go: the rename fails after the temp file was written
    (tmp_path / "x.json").mkdir()
    with pytest.raises(EnvironmentFailure, match=r"cannot write .*x\.json"):
        write_json(tmp_path / "x.json", {"a": 1})
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_a_full_disk_releases_the_reserve_and_tries_once_more(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    reserve_space(tmp_path, 16)
    calls: list[Path] = []
    real = Path.write_text

    def full_once(self: Path, data: str, *args: object, **kwargs: object) -> int:
        calls.append(self)
        if len(calls) == 1:
            self.write_bytes(b"partial")  # a half-written temp file, as a full disk leaves it
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(Path, "write_text", full_once)
    write_json(tmp_path / "manifest.json", {"ok": True}, reserve=tmp_path)
    assert len(calls) == 2
    assert not (tmp_path / RESERVE_NAME).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]
    # no reserve left: the next full disk is an environment failure naming the file
    calls.clear()
    with pytest.raises(EnvironmentFailure, match=r"disk full writing .*manifest\.json \(No space left on device\)"):
        write_json(tmp_path / "manifest.json", {"ok": False}, reserve=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]


def test_appends_grow_the_file(tmp_path: Path) -> None:
    append_text(tmp_path / "bookings", "1 2.0\n")
    append_text(tmp_path / "bookings", "3 4.0\n")
    assert (tmp_path / "bookings").read_text() == "1 2.0\n3 4.0\n"


def test_progress_round_trip_and_unreadable_files(tmp_path: Path) -> None:
    path = tmp_path / "progress_a.json"
    assert progress.read(path) is None
    progress.write(path, {"users": 3})
    assert progress.read(path) == {"users": 3}
    path.write_text("[1]")
    assert progress.read(path) is None


def test_pids_record_round_trip(tmp_path: Path) -> None:
    run = tmp_path / "run-1"
    run.mkdir()
    assert pids.read(run) == {}
    pids.write(run, {"owner": {"pid": 1}, "children": []})
    assert pids.read(run)["owner"] == {"pid": 1}
    assert pids.folders_with_record(tmp_path) == [run]


def test_explain_pages_and_capacity_steps_land_where_readers_look(tmp_path: Path) -> None:
    path = explain.write(tmp_path / "explain", "upcoming", "SELECT  1\n FROM t", [{"Plan": {}}], {"rows": 1})
    assert path == tmp_path / "explain" / "upcoming.json"
    assert '"sql": "SELECT 1 FROM t"' in path.read_text()
    assert pages.write(tmp_path / "report.html", "<p>x</p>").read_text() == "<p>x</p>"
    step = capacity_steps.write_step(tmp_path, 12.5, {"b": 1, "a": 2})
    assert step == tmp_path / "steps" / "rate-12.5.yaml"
    assert step.read_text() == "b: 1\na: 2\n"
