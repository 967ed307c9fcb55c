"""Synthetic samples in format 3 (columnar Parquet) for the analysis benchmarks: realistic shapes, written in chunks.

~8 request names, 3 methods, a few error strings (~1 % failures), lognormal latencies, start times spread over
`duration_s`, two worker processes. Written chunk by chunk, so that 100M rows need no more memory than one chunk.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

# the format-3 schema of the common design (H1's bookbench.artifacts.sample_parts.SCHEMA; kept here so that the
# benchmark also runs on the old code's worktree, which has no such module)
SCHEMA = pa.schema([
    ("ts", pa.float64()), ("latency_ms", pa.float64()), ("name", pa.dictionary(pa.int32(), pa.utf8())),
    ("method", pa.dictionary(pa.int32(), pa.utf8())), ("status", pa.int32()), ("ok", pa.int8()),
    ("error", pa.dictionary(pa.int32(), pa.utf8())), ("bytes", pa.int64()), ("users", pa.int32()),
    ("worker", pa.dictionary(pa.int32(), pa.utf8())), ("intended", pa.float64()),
], metadata={b"bookbench.samples_format": b"3"})

NAMES = ("checkAvailability", "lookupUpcomingAppointment", "bookClinicAppointment", "cancelAppointment",
         "vapi_checkAvailability", "vapi_lookupUpcomingAppointment", "vapi_bookClinicAppointment", "login")
METHODS = ("GET", "POST", "DELETE")
ERRORS = ("", "HTTP 409: slot_taken", "HTTP 404: appointment 123 not found", "HTTP 503: database_unavailable",
          "ConnectionResetError: [Errno 104] Connection reset by peer")
T0 = 1_700_000_000.0
CHUNK = 1_000_000


def _chunk(rng: np.random.Generator, n: int, start: float, rate: float, worker: str) -> pa.RecordBatch:
    ts = start + np.sort(rng.uniform(0, n / rate, n))
    latency = rng.lognormal(mean=np.log(12.0), sigma=0.8, size=n)
    name = rng.integers(0, len(NAMES), n, dtype=np.int32)
    error = np.where(rng.random(n) < 0.01, rng.integers(1, len(ERRORS), n, dtype=np.int32), 0).astype(np.int32)
    ok = (error == 0).astype(np.int8)
    status = np.where(ok == 1, 200, np.array([0, 409, 404, 503, 0], dtype=np.int32)[error]).astype(np.int32)
    cols = [
        pa.array(ts), pa.array(latency),
        pa.DictionaryArray.from_arrays(pa.array(name), pa.array(NAMES)),
        pa.DictionaryArray.from_arrays(pa.array((name % 3).astype(np.int32)), pa.array(METHODS)),
        pa.array(status), pa.array(ok),
        pa.DictionaryArray.from_arrays(pa.array(error), pa.array(ERRORS)),
        pa.array(rng.integers(100, 2000, n)), pa.array(np.full(n, 50, dtype=np.int32)),
        pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int32)), pa.array([worker])),
        pa.nulls(n, pa.float64()),
    ]
    return pa.RecordBatch.from_arrays(cols, schema=SCHEMA)


def write_folder(folder: Path, rows: int, duration_s: float = 3600.0, processes: int = 2, seed: int = 1) -> float:
    """`rows` samples over `duration_s` in `<folder>/w<k>.parquet` (one sealed file per process, row groups of 1M
    rows), each process covering the whole duration; the first start time."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    per_process = rows // processes
    rate = per_process / duration_s
    for k in range(processes):
        n_rows = per_process + (rows % processes if k == processes - 1 else 0)
        with pq.ParquetWriter(folder / f"w{k + 1}.parquet", SCHEMA) as writer:
            done, start = 0, T0
            while done < n_rows:
                n = min(CHUNK, n_rows - done)
                writer.write_batch(_chunk(rng, n, start, rate, f"w{k + 1}"), row_group_size=CHUNK)
                done += n
                start += n / rate
    return T0
