"""Samples file (multi-member gzip survives a kill between flushes) and secret masking in the command line."""

import gzip
from pathlib import Path

from bookbench.artifacts.samples import COLUMNS, SampleWriter, read_rows
from bookbench.pipeline.facts import masked_command


def test_every_flush_is_readable_on_its_own(tmp_path: Path) -> None:
    path = tmp_path / "s.csv.gz"
    w = SampleWriter(path)
    w.add((1.5, 2.25, "bookClinicAppointment", "POST", 201, 1, "", 40, 3, "local", None))
    assert w.flush() == 1
    w.extend([(2.0, 0.123456, "checkAvailability", "GET", 0, 0, "conn, refused", 0, 3, "w1", 1.9)])
    w.flush()
    rows = read_rows(path)
    assert list(rows[0]) == list(COLUMNS)
    assert [r["latency_ms"] for r in rows] == ["2.25", "0.123456"]
    assert rows[1]["error"] == "conn, refused"
    assert [r["intended"] for r in rows] == ["", "1.9"]  # closed model: empty; open model: the intended start
    # a process killed after two flushes and in the middle of a third still leaves the first two readable
    with path.open("ab") as fh:
        fh.write(gzip.compress(b"9,9,x,GET,200,1,,1,1,local\n" * 50)[:30])
    assert len(read_rows(path)) == 2


def test_reopening_appends_without_a_second_header(tmp_path: Path) -> None:
    path = tmp_path / "s.csv.gz"
    SampleWriter(path).flush()
    w = SampleWriter(path)
    w.add((1.0, 1.0, "n", "GET", 200, 1, "", 1, 1, "local", None))
    w.flush()
    assert len(read_rows(path)) == 1


def test_command_line_masks_dsn_passwords_and_the_key_secret() -> None:
    argv = ["bookbench", "run", "--dsn", "postgresql://u:pw123@127.0.0.1/db", "--key-secret", "shh",
            "--target-url=http://a:tok@127.0.0.1:8000", "--quick"]
    out = " ".join(masked_command(argv))
    assert "pw123" not in out and "shh" not in out and "tok@" not in out
    assert "--quick" in out and "postgresql://u:***@127.0.0.1/db" in out
