"""Per-request CPU cost of bookbench's recording hook and its gzip flushes, measured without load or network.

Run as a script (importing the locustfile monkey-patches the interpreter with gevent): python -m benchmarks.hook_cost
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path


def main(n: int = 200_000) -> float:
    folder = Path(tempfile.mkdtemp())
    cfg = folder / "config.json"
    cfg.write_text(json.dumps({
        "format_version": 1, "scenario": None,
        "task_mix": {"protocol": "rest", "weights": {"lookupUpcomingAppointment": 1}},
        "dataset": {"orgs": 3, "providers_per_org": 3, "contacts": 300, "appointments": 3000, "seed": 7},
        "samples_path": str(folder / "s.csv.gz")}))
    os.environ["BOOKBENCH_RUN_CONFIG"] = str(cfg)
    from bookbench.artifacts.samples import SampleWriter
    from bookbench.load.locustfile import Recorder

    class Response:
        status_code = 200

    recorder = Recorder()
    recorder.writer = SampleWriter(folder / "s.csv.gz")
    started = time.perf_counter()
    for i in range(n):
        recorder.on_request("GET", "lookupUpcomingAppointment", 3.14159, 120, response=Response(), exception=None,
                            start_time=1.7e9 + i)
        if i % 1000 == 999:  # the real recorder flushes once a second; 1000 rows is a busy second
            recorder.flush_local()
    recorder.flush_local()
    per_request_us = 1e6 * (time.perf_counter() - started) / n
    assert recorder.writer.written == n
    print(f"recording hook + flush: {per_request_us:.2f} us per request ({n:,} requests written)")
    return per_request_us


if __name__ == "__main__":
    main()
