"""The analysis engine (DuckDB over the samples files): format 3 gives the known answers format 2 gives, a folder
never sealed still reads, a changed file is named, and the headline percentiles equal numpy's to the last bit."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bookbench.analysis import run_figures
from bookbench.analysis import summarize as analysis
from bookbench.analysis.sample_scan import Samples
from bookbench.artifacts import manifest, sample_parts
from bookbench.artifacts.samples import Sample, read_rows

KNOWN = Path(__file__).resolve().parents[1] / "data" / "known_run"


def _rows() -> list[Sample]:
    return [(float(r["ts"]), float(r["latency_ms"]), r["name"], r["method"], int(r["status"]), int(r["ok"]),
             r["error"], int(r["bytes"]), int(r["users"]), r["worker"],
             float(r["intended"]) if r.get("intended") else None)
            for r in read_rows(KNOWN / "samples" / "known.csv.gz")]


def columnar_run(tmp_path: Path, seal: bool = True) -> Path:
    """The known run with its rows in format 3: two processes' parts (half each), sealed or as a killed run left
    them."""
    run = tmp_path / "run3"
    shutil.copytree(KNOWN, run)
    (run / "samples" / "known.csv.gz").unlink()
    folder = run / "samples" / "known"
    rows = _rows()
    for process, share in (("w1", rows[::2]), ("w2", rows[1::2])):
        writer = sample_parts.PartWriter(folder, process)
        for start in range(0, len(share), 200):  # several parts each, as a flush a second makes them
            writer.extend(share[start:start + 200])
            writer.flush()
    man = manifest.read(run)
    files = sample_parts.seal(folder, run_dir=run) if seal else None
    man.scenarios["known"] = man.scenarios["known"].model_copy(
        update={"samples_file": "samples/known", "samples_files": files, "samples_sha256": None})
    manifest.write(run, man)
    return run


def test_format_3_gives_format_2s_figures(tmp_path: Path) -> None:
    old = analysis.analyse_run(KNOWN).scenarios["known"]
    new = analysis.analyse_run(columnar_run(tmp_path)).scenarios["known"]
    assert new.samples_file is not None and new.samples_file.status == "verified", new.samples_file
    assert new.samples_file.rows == 1010
    # the same figures whatever the format (the workers' names differ: none of the figures reads them)
    assert new.model_dump(exclude={"samples_file"}) == old.model_dump(exclude={"samples_file"})
    three, two = run_figures.series(tmp_path / "run3", "known"), run_figures.series(KNOWN, "known")
    assert three.bins.tolist() == two.bins.tolist() and three.counts.tolist() == two.counts.tolist()


def test_a_folder_never_sealed_reads_and_a_changed_file_is_named(tmp_path: Path) -> None:
    killed = analysis.analyse_run(columnar_run(tmp_path / "killed", seal=False)).scenarios["known"]
    assert killed.samples_file is not None and killed.samples_file.status == "not verified"
    assert killed.requests == 1000
    run = columnar_run(tmp_path / "changed")
    path = run / "samples" / "known" / "w1.parquet"
    path.write_bytes(path.read_bytes()[:-100])  # cut short: no footer
    changed = analysis.analyse_run(run).scenarios["known"]
    assert changed.samples_file is not None and changed.samples_file.status == "damaged"
    assert "samples/known/w1.parquet" in (changed.samples_file.detail or "")
    assert changed.samples_total == 505  # the other process's rows still count


@pytest.mark.parametrize("n", [1, 2, 3, 10, 101, 4_999])
def test_headline_percentiles_are_numpys_to_the_last_bit(n: int) -> None:
    rng = np.random.default_rng(n)
    lat = rng.lognormal(2, 1, n)
    percents = [50, 95, 99, 99.9, *np.linspace(0, 100, 200)]
    df = pd.DataFrame({"ts": np.arange(n, dtype=float), "latency_ms": lat, "name": "a", "method": "GET",
                       "status": 200, "ok": 1, "error": "", "bytes": 1, "users": 1, "worker": "local"})
    with Samples.from_frame(df) as sam:
        got = sam.percentiles("latency_ms", "TRUE", percents)
    assert got == np.percentile(lat, percents).tolist()
