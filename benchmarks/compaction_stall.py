"""What rolling compaction of the sample parts costs the load, and what it saves the readers (issue 28, finding 6).

1. The gevent loop's longest stall with and without compaction: bookbench's recorder in a Locust process
   (benchmarks/compaction_locustfile.py) under callers with no pause against the trivial target
   (benchmarks/static_target.py), its samples folder seeded with an hour of files less one part and one segment
   (at RATE rows a second), so that a minute's merge (60 parts) and an hour's (60 segments, 3600 x RATE rows) both
   run within the measured seconds. Interleaved rounds, off then on.
2. Files per process after an hour (3600 parts written directly, every merge due run) and after a day (the
   compactor's own count), and how long reading the hour's folder takes with and without compaction.

Run as a script: python -m benchmarks.compaction_stall (BENCH_ROUNDS, BENCH_SECONDS, BENCH_RATE to change).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.static_target import Process
from benchmarks.synthetic_samples import T0, _chunk
from bookbench.artifacts import sample_parts
from bookbench.artifacts.sample_compaction import Compactor
from bookbench.artifacts.sample_parts import SCHEMA

HERE = Path(__file__).resolve().parent
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "45"))  # an hour's merge takes 12-30 s on a shared 2-core box
RATE = int(os.environ.get("BENCH_RATE", "3000"))  # rows a second in the seeded files: a busy process
USERS = 30
EVERY = sample_parts.COMPACT_EVERY


def _seed(template: Path) -> int:
    """An hour at RATE rows a second, less one part and one segment, as the writer leaves it: 59 segments of 60 parts
    and 59 parts; their rows."""
    template.mkdir(parents=True)
    rng = np.random.default_rng(7)
    per_part, rows = RATE, 0
    for k in range(EVERY - 1):
        table = pa.Table.from_batches([_chunk(rng, EVERY * per_part, T0 + 60 * k, RATE, "local")]).cast(SCHEMA)
        pq.write_table(table, template / sample_parts.segment_name("local", EVERY * k, EVERY * k + EVERY - 1),
                       compression=sample_parts.COMPRESSION, compression_level=sample_parts.COMPRESSION_LEVEL,
                       row_group_size=sample_parts.ROW_GROUP_ROWS)
        rows += table.num_rows
    for seq in range(EVERY * (EVERY - 1), EVERY * EVERY - 1):
        table = pa.Table.from_batches([_chunk(rng, per_part, T0 + seq, RATE, "local")]).cast(SCHEMA)
        pq.write_table(table, template / sample_parts.part_name("local", seq), **sample_parts.PART_OPTIONS)
        rows += table.num_rows
    return rows


def _run_locust(url: str, template: Path, work: Path, every: int) -> dict[str, Any]:
    samples = work / "samples" / "s"
    samples.mkdir(parents=True)
    for p in template.iterdir():
        os.link(p, samples / p.name)  # a merge removes its inputs: the template stays for the next round
    out = work / "result.json"
    env = {**os.environ, "BENCH_SAMPLES": str(samples), "BENCH_COMPACT_EVERY": str(every), "BENCH_OUT": str(out)}
    subprocess.run([sys.executable, "-m", "locust", "-f", str(HERE / "compaction_locustfile.py"), "--headless",
                    "-u", str(USERS), "-r", str(USERS), "-t", f"{SECONDS}s", "--host", url, "--only-summary",
                    "--loglevel", "WARNING"], env=env, check=True, timeout=SECONDS + 120,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    result: dict[str, Any] = json.loads(out.read_text())
    result["files"] = len(sample_parts.files(samples))
    result["rows_read"] = sum(sample_parts.rows_in(p) for p in sample_parts.files(samples))
    return result


def _report(res: dict[str, Any], seeded: int) -> str:
    late = sorted(d for _, d in res["late"])
    merging = [(w, w + d) for _, w, d, _ in res["merges"]]
    during = sorted(d for t, d in res["late"] if any(a <= t <= b for a, b in merging)) or [0.0]
    flush = sorted(d for _, d in res["flush"])
    merges = ", ".join(f"{n} files in {d:.2f} s ({cpu:.2f} s CPU)" for n, _, d, cpu in res["merges"])
    whole = res["rows_read"] == seeded + res["rows"]
    return (f"{res['requests'] / SECONDS:,.0f} req/s; the loop woke late by at most {1e3 * late[-1]:.0f} ms (p99.9 "
            f"{1e3 * late[int(0.999 * (len(late) - 1))]:.0f} ms, {sum(d > 0.05 for d in late)} of {len(late):,} "
            f"ticks over 50 ms), while a merge ran at most {1e3 * during[-1]:.0f} ms; flush max {1e3 * flush[-1]:.0f} "
            f"ms, median {1e3 * flush[len(flush) // 2]:.1f} ms; RSS max {res['max_rss_mb']:.0f} MB; merges: "
            f"{merges or 'none'}; {res['files']} files after, {res['rows_read']:,} rows read "
            f"({'= every row written' if whole else 'NOT every row written'})")


def stalls(tmp: Path) -> None:
    template = tmp / "template"
    started = time.perf_counter()
    seeded = _seed(template)
    print(f"seeded {seeded:,} rows in {EVERY - 1} segments and {EVERY - 1} parts "
          f"({time.perf_counter() - started:.0f} s); {USERS} callers, {SECONDS} s a run, load average "
          f"{os.getloadavg()[0]:.1f}")
    target = Process(tmp)
    try:
        for r in range(ROUNDS):
            for every in (0, EVERY):
                res = _run_locust(target.base_url, template, tmp / f"run{r}-{every}", every)
                label = f"compaction every {every}" if every else "no compaction"
                print(f"round {r + 1}, {label}: {_report(res, seeded)}")
    finally:
        target.stop()
    print(f"load average after: {os.getloadavg()[0]:.1f}")


def _hour(folder: Path, every: int) -> tuple[int, int, float, float]:
    """3600 parts written directly (each merge due run to its end before the next part): the files left, the most
    there were at any moment, the seconds that took, and the seconds a reader then takes to open every file and read
    its rows."""
    writer = sample_parts.PartWriter(folder, "local", compact_every=every)
    row = (T0, 1.5, "checkAvailability", "GET", 200, 1, "", 10, 2, "local", None)
    most = 0
    started = time.perf_counter()
    for _ in range(3600):
        writer.extend([row] * 10)
        writer.flush()
        writer.compaction.drain(lambda _: time.sleep(0.0005))
        most = max(most, sum(map(len, writer.compaction.levels)))
    wrote = time.perf_counter() - started
    started = time.perf_counter()
    paths = sample_parts.files(folder)
    rows = sum(pq.read_table(p).num_rows for p in paths)
    assert rows == 36_000
    return len(paths), most, wrote, time.perf_counter() - started


def files_per_process(tmp: Path) -> None:
    for every in (0, EVERY):
        n, most, wrote, read = _hour(tmp / f"hour{every}", every)
        label = f"compaction every {every}" if every else "no compaction"
        print(f"files per process after an hour, {label}: {n}, at most {most if every else n} on the way (3600 "
              f"parts of 10 rows written in {wrote:.1f} s; the folder then opened and read in {read:.2f} s)")
    day = Compactor(EVERY, lambda inputs, go_on: inputs[0])  # no file: only the count of what a day leaves
    most = 0
    for seq in range(24 * 3600):
        day.add([Path(str(seq))])
        day.drain(lambda _: time.sleep(0.0001))
        most = max(most, sum(map(len, day.levels)))
    print(f"files per process after a day, compaction every {EVERY}: {sum(map(len, day.levels))}, at most {most} on "
          "the way (24 x 3600 parts)")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        files_per_process(Path(tmp))
        stalls(Path(tmp))


if __name__ == "__main__":
    main()
