"""How the analysis engine was chosen: DuckDB against Polars (lazy, streaming) on the summary's hardest queries.

`python -m benchmarks.analysis_engines FOLDER ENGINE` runs, over every `*.parquet` of FOLDER, what the summary needs
that grows with the samples: exact P50/P95/P99/P99.9 + mean + max overall and per request name; per-second counts
and P50/P95/P99; the 60-bin histogram and the 200-point CDF. `python -m benchmarks.analysis_engines FOLDER` runs
each engine in a subprocess under /usr/bin/time and prints its wall time and peak RSS.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

QS = [0.5, 0.95, 0.99, 0.999]
CDF = [i / 199 for i in range(200)]


def duck(folder: Path) -> None:
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads = 2")
    con.execute(f"CREATE VIEW s AS SELECT *, ts + latency_ms / 1000.0 AS \"end\" "
                f"FROM read_parquet('{folder}/*.parquet')")
    t0 = con.execute("SELECT min(ts) FROM s").fetchone()[0]  # type: ignore[index]
    con.execute(f"CREATE VIEW st AS SELECT * FROM s WHERE ts >= {t0 + 30}")
    con.execute(f"SELECT count(*), avg(latency_ms), max(latency_ms), quantile_cont(latency_ms, {QS}) "
                "FROM st").fetchall()
    con.execute(f"SELECT name, count(*), avg(latency_ms), max(latency_ms), quantile_cont(latency_ms, {QS}) "
                "FROM st GROUP BY name").fetchall()
    con.execute(f"SELECT floor(\"end\" - {t0}) AS sec, count(*), sum(1 - ok), "
                "quantile_cont(latency_ms, [0.5, 0.95, 0.99]) FROM s GROUP BY sec").fetchall()
    con.execute(f"SELECT quantile_cont(latency_ms, {CDF}) FROM st").fetchall()
    lo, hi = con.execute("SELECT min(latency_ms), max(latency_ms) FROM st").fetchone()  # type: ignore[misc]
    con.execute(f"SELECT floor(ln(latency_ms / {lo}) / ln({hi * 1.0001} / {lo}) * 60) AS b, count(*) FROM st "
                "GROUP BY b").fetchall()


def polars(folder: Path) -> None:
    import polars as pl

    s = pl.scan_parquet(f"{folder}/*.parquet").with_columns((pl.col("ts") + pl.col("latency_ms") / 1000.0).alias("end"))
    t0 = s.select(pl.col("ts").min()).collect(engine="streaming").item()
    st = s.filter(pl.col("ts") >= t0 + 30)
    lat = pl.col("latency_ms")
    aggs = [pl.len(), lat.mean().alias("mean"), lat.max().alias("max"),
            *[lat.quantile(q, interpolation="linear").alias(f"q{q}") for q in QS]]
    st.select(aggs).collect(engine="streaming")
    st.group_by("name").agg(aggs).collect(engine="streaming")
    s.group_by(((pl.col("end") - t0).floor()).alias("sec")).agg(
        pl.len(), (1 - pl.col("ok")).sum(), *[lat.quantile(q, interpolation="linear").alias(f"q{q}")
                                             for q in (0.5, 0.95, 0.99)]).collect(engine="streaming")
    st.select([lat.quantile(q, interpolation="linear").alias(f"c{i}") for i, q in enumerate(CDF)]).collect(
        engine="streaming")
    lo, hi = st.select(lat.min().alias("lo"), lat.max().alias("hi")).collect(engine="streaming").row(0)
    st.group_by(((lat / lo).log() / float(__import__("math").log(hi * 1.0001 / lo)) * 60).floor().alias("b")).agg(
        pl.len()).collect(engine="streaming")


def measure(folder: Path) -> None:
    for engine in ("duckdb", "polars"):
        start = time.perf_counter()
        done = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-m", "benchmarks.analysis_engines", str(folder),
                               engine], capture_output=True, text=True, check=True)
        wall = time.perf_counter() - start
        rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))  # type: ignore[union-attr]
        print(f"{engine}: {wall:.1f} s, peak RSS {rss / 1024:.0f} MB")


if __name__ == "__main__":
    if len(sys.argv) == 2:
        measure(Path(sys.argv[1]))
    else:
        {"duckdb": duck, "polars": polars}[sys.argv[2]](Path(sys.argv[1]))
