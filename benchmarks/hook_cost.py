"""Per-request CPU cost of bookbench's recording hook and its flushes, measured without load or network: samples
format 2 (gzip CSV members, the recorder before issue 28) and format 3 (Parquet parts), the same rows; format 3 with
its rolling compaction (a merge every 60 parts, in a thread beside the loop: 200 parts come here in well under a
second, so merges run far more often than the once a minute of a real load) and without.

Run as a script (importing the locustfile monkey-patches the interpreter with gevent): python -m benchmarks.hook_cost
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

ROWS_PER_FLUSH = 1000  # the real recorder flushes once a second; 1000 rows is a busy second


def _measure(recorder: object, n: int) -> float:
    from bookbench.load.recorder import Recorder

    assert isinstance(recorder, Recorder)

    class Response:
        status_code = 200

    names = ("lookupUpcomingAppointment", "checkAvailability", "bookClinicAppointment")
    started = time.perf_counter()
    for i in range(n):
        failed = i % 97 == 0
        recorder.on_request("GET", names[i % 3], 3.14159 + i % 13, 120, response=Response(),
                            exception=RuntimeError("HTTP 500: boom") if failed else None, start_time=1.7e9 + i)
        if i % ROWS_PER_FLUSH == ROWS_PER_FLUSH - 1:
            recorder.flush_local()
    recorder.flush_local()
    return 1e6 * (time.perf_counter() - started) / n


def main(n: int = 200_000) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp())
    cfg = folder / "config.json"
    cfg.write_text(json.dumps({
        "format_version": 1, "scenario": None,
        "task_mix": {"protocol": "rest", "weights": {"lookupUpcomingAppointment": 1}},
        "dataset": {"orgs": 3, "providers_per_org": 3, "contacts": 300, "appointments": 3000, "seed": 7}}))
    os.environ["BOOKBENCH_RUN_CONFIG"] = str(cfg)
    from bookbench.artifacts.sample_parts import COMPACT_EVERY, PartWriter, seal
    from bookbench.artifacts.samples import SampleWriter
    from bookbench.load.recorder import Recorder

    costs: dict[str, float] = {}
    # interleaved, twice each: a machine shared with other work drifts, and the first round warms the imports
    for _ in range(2):
        for fmt in ("format 2", "format 3", "format 3 without compaction"):
            recorder = Recorder(open_model=False)
            out = Path(tempfile.mkdtemp(dir=folder))
            every = 0 if fmt.endswith("without compaction") else COMPACT_EVERY
            recorder.writer = (SampleWriter(out / "s.csv.gz") if fmt == "format 2"
                               else PartWriter(out / "s", "local", compact_every=every))
            cost = _measure(recorder, n)
            assert recorder.writer.written == n
            if isinstance(recorder.writer, PartWriter):
                recorder.writer.compaction.drain()  # not into the next measurement
            costs[fmt] = min(cost, costs.get(fmt, cost))
    started = time.perf_counter()
    sealed = seal(out / "s", folder)  # the last format-3 folder, never compacted: its 200 parts merged into one file
    seal_us = 1e6 * (time.perf_counter() - started) / n
    assert sum(s.rows for s in sealed) == n
    for fmt, cost in costs.items():
        print(f"recording hook + flush, samples {fmt}: {cost:.2f} us per request ({n:,} requests written, "
              f"{ROWS_PER_FLUSH} per flush)")
    print(f"sealing format 3 after the load: {seal_us:.2f} us per request (not on the load's path)")
    return costs


if __name__ == "__main__":
    main()
