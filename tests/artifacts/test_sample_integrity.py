"""Samples files whose completeness is checked (issue 24): `bookbench report` on a run folder whose samples file is
truncated, not gzip, missing, altered or holds a bad row says so by file (and line) and is NO-GO, never a pass; a
manifest naming a path outside its folder or an impossible count is refused (exit 2, naming the key); a folder
from before checksums were recorded still reads, "not verified"."""

from __future__ import annotations

import gzip
import html
import json
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bookbench.artifacts import samples
from bookbench.artifacts.samples import SampleWriter, read_rows
from bookbench.cli.app import app

KNOWN = Path(__file__).resolve().parents[1] / "data" / "known_run"
REL = "samples/known.csv.gz"


def _run_folder(tmp_path: Path, sealed: bool = True) -> Path:
    """known_run with limits it passes (so that only the samples file can fail it) and, as a run of today records
    them, the row count and sha256 of its samples file."""
    run = tmp_path / "run"
    shutil.copytree(KNOWN, run)
    data = json.loads((run / "manifest.json").read_text())
    data["scenario_file"]["thresholds"] = {"global": {"p95_ms": 500, "error_rate": 0.05}}
    data["scenario_file"]["review_targets"] = {}
    data["scenario_file"]["alert_rules"] = {"p95_ms": 600, "error_rate": 0.05, "throughput_drop": 0.3}
    if sealed:
        _seal(data, run)
    (run / "manifest.json").write_text(json.dumps(data))
    return run


def _seal(data: dict, run: Path) -> None:  # type: ignore[type-arg]
    sealed = samples.seal(run / REL)
    assert sealed is not None
    data["scenarios"]["known"]["counts"]["samples"], data["scenarios"]["known"]["samples_sha256"] = sealed


def _report(run: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["report", str(run)])
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, " ".join(result.output.split())


def _rewrite_csv(path: Path, line: int, column: str, value: str) -> None:
    """Replace one cell (line 1 is the header), as a writer that recorded a bad value would have."""
    text = gzip.decompress(path.read_bytes()).decode().split("\n")
    header = text[0].split(",")
    cells = text[line - 1].split(",")
    cells[header.index(column)] = value
    text[line - 1] = ",".join(cells)
    path.write_bytes(gzip.compress("\n".join(text).encode()))


def test_an_intact_sealed_file_is_verified_and_the_run_is_not_failed(tmp_path: Path) -> None:
    run = _run_folder(tmp_path)
    code, out = _report(run)
    assert code == 0, out  # INCOMPLETE (no checks were run), nothing failed
    summary = json.loads((run / "summary.json").read_text())["scenarios"]["known"]
    assert summary["samples_file"]["status"] == "verified", summary["samples_file"]
    assert summary["samples_file"]["rows"] == 1010
    verdict = next(v for v in json.loads((run / "verdicts.json").read_text())["verdicts"]
                   if v["metric"] == "samples_file")
    assert verdict["status"] == "pass"


def _truncate_half(run: Path) -> None:
    data = (run / REL).read_bytes()
    (run / REL).write_bytes(data[:len(data) // 2])


def _not_gzip(run: Path) -> None:
    (run / REL).write_bytes(gzip.decompress((run / REL).read_bytes()))


def _missing(run: Path) -> None:
    (run / REL).unlink()


def _recompressed(run: Path) -> None:
    # the same rows, other bytes: only the checksum can tell
    (run / REL).write_bytes(gzip.compress(gzip.decompress((run / REL).read_bytes()), compresslevel=9, mtime=1))


def _one_more_member(run: Path) -> None:
    with (run / REL).open("ab") as fh:
        fh.write(gzip.compress(b"1700000099.0,5.0,checkAvailability,GET,200,1,,100,1,local\n"))


@pytest.mark.parametrize(("damage", "expected"), [
    (_truncate_half, r"samples file damaged: samples/known.csv.gz is truncated (a gzip member cut short): "
                     r"{rows} of 1,010 rows readable"),
    (_not_gzip, "samples file damaged: samples/known.csv.gz is not a gzip file"),
    (_missing, "samples file damaged: samples/known.csv.gz is missing"),
    (_recompressed, "samples file damaged: samples/known.csv.gz was changed after the run: its sha256"),
    (_one_more_member, "samples file damaged: samples/known.csv.gz holds 1,011 rows; 1,010 were written"),
], ids=["truncated-half", "not-gzip", "missing", "checksum", "rows"])
def test_a_damaged_samples_file_is_no_go_naming_the_file(tmp_path: Path, damage: Callable[[Path], None],
                                                         expected: str) -> None:
    run = _run_folder(tmp_path)
    damage(run)
    if "{rows}" in expected:  # as many rows as the cut file still holds whole
        expected = expected.format(rows=f"{samples.inspect(run / REL).rows:,}")
        assert 0 < samples.inspect(run / REL).rows < 1010
    code, out = _report(run)
    assert code == 1, out
    assert "decision: NO-GO" in out
    assert f"FAIL integrity known samples_file: {expected}" in out, out
    page = html.unescape(" ".join((run / "report.html").read_text().split()))
    assert expected.split(" {rows}")[0].split(": its")[0] in page
    verdicts = json.loads((run / "verdicts.json").read_text())
    assert verdicts["decision"] == "NO-GO"


@pytest.mark.parametrize(("value", "why"), [
    ("abc", 'latency_ms "abc" is not a number'),
    ("nan", 'latency_ms "nan" is not a finite number'),
    ("inf", 'latency_ms "inf" is not a finite number'),
    ("-5", 'latency_ms "-5" is negative'),
])
def test_a_bad_latency_names_file_and_line(tmp_path: Path, value: str, why: str) -> None:
    run = _run_folder(tmp_path, sealed=False)
    _rewrite_csv(run / REL, 17, "latency_ms", value)
    data = json.loads((run / "manifest.json").read_text())
    _seal(data, run)  # written so by the writer: the checksum matches, the row does not
    (run / "manifest.json").write_text(json.dumps(data))
    code, out = _report(run)
    assert code == 1, out
    assert f"samples file damaged: samples/known.csv.gz line 17: {why}" in out, out
    # the other rows are still analysed
    assert json.loads((run / "summary.json").read_text())["scenarios"]["known"]["samples_total"] == 1009


@pytest.mark.parametrize(("change", "key"), [
    (lambda s: s.update(samples_file="../../../../etc/passwd"), "scenarios.known.samples_file"),
    (lambda s: s.update(samples_file="/etc/passwd"), "scenarios.known.samples_file"),
    (lambda s: s["counts"].update(samples=-1), "scenarios.known.counts.samples"),
    (lambda s: s["counts"].update(locust=-3), "scenarios.known.counts.locust"),
    (lambda s: s.update(samples_sha256="not a digest"), "scenarios.known.samples_sha256"),
])
def test_an_impossible_manifest_is_refused_naming_the_key(tmp_path: Path, change: Callable[[dict], None],  # type: ignore[type-arg]
                                                          key: str) -> None:
    run = _run_folder(tmp_path)
    data = json.loads((run / "manifest.json").read_text())
    change(data["scenarios"]["known"])
    (run / "manifest.json").write_text(json.dumps(data))
    code, out = _report(run)
    assert code == 2, out
    assert f"manifest.json: {key}:" in out, out
    assert not (run / "report.html").exists()


def test_a_folder_without_a_checksum_still_reads_not_verified(tmp_path: Path) -> None:
    run = _run_folder(tmp_path, sealed=False)
    code, out = _report(run)
    assert code == 0, out
    found = json.loads((run / "summary.json").read_text())["scenarios"]["known"]["samples_file"]
    assert found["status"] == "not verified" and found["rows"] == 1010
    assert "not verified" in (run / "report.html").read_text().lower()
    assert not [v for v in json.loads((run / "verdicts.json").read_text())["verdicts"] if v["metric"] == "samples_file"]


def test_inspect_reads_many_members_across_chunks_like_the_tolerant_reader(tmp_path: Path) -> None:
    path = tmp_path / "s.csv.gz"
    writer = SampleWriter(path)
    rng = random.Random(3)
    for second in range(40):  # one member per flush, as Locust writes them once a second
        writer.extend([(1.7e9 + second + i / 1e4, rng.random() * 100, "checkAvailability", "GET", 200, 1, "", 10, 3,
                        "local", None) for i in range(400)])
        writer.flush()
    assert path.stat().st_size > 3 * 65536  # members straddle the reader's chunks
    found = samples.inspect(path)
    assert found.problem is None and found.rows == 16_000 == len(read_rows(path))
    # a last member cut short: reported, and the whole members before it still count
    with path.open("ab") as fh:
        fh.write(gzip.compress(b"1,2,x,GET,200,1,,1,1,local,\n" * 500)[:40])
    cut = samples.inspect(path)
    assert cut.problem == "truncated" and cut.rows == 16_000
