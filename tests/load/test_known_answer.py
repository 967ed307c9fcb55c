"""The open model against a target whose answer is known (tests/load/stall_target.py: 10 ms per request, a 1 s
stall every 5 s): its percentiles from the intended send time match the analytic ones; the closed model's hide the
stall, because its callers wait instead of arriving."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from bookbench.artifacts.samples import read_rows
from bookbench.db.embedded import free_port
from tests.load.stall_target import expected_latency_ms

# serial: send times within 60 ms of the analytic answer need the cores to themselves
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.serial]
HERE = Path(__file__).resolve().parent
SCENARIOS = HERE.parent / "data" / "scenarios_stall.yaml"
# what the open model may add on this busy 2-core machine: the generator's own lateness and HTTP overhead
TOLERANCE_MS = 60.0


def test_open_model_matches_the_analytic_percentiles_and_the_closed_model_hides_the_stall(tmp_path: Path) -> None:
    port = free_port()
    target = subprocess.Popen([sys.executable, str(HERE / "stall_target.py"), str(port)])
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the stall target did not start"
                time.sleep(0.1)
        done = subprocess.run(
            [sys.executable, "-m", "bookbench", "run", "--scenario-file", str(SCENARIOS), "--scenarios", "open,closed",
             "--target-url", f"http://127.0.0.1:{port}", "--skip-checks", "--out", str(tmp_path)],
            capture_output=True, text=True, timeout=300)
    finally:
        target.terminate()
        target.wait(10)
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    summary = json.loads((run_dir / "summary.json").read_text())["scenarios"]
    om = summary["open"]["open_model"]
    assert om["dropped"] == 0
    got = om["latency_from_intended_ms"]
    for q, key in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
        want = expected_latency_ms(q, 10.0, 5.0, 1.0)
        assert abs(got[key] - want) < TOLERANCE_MS, (key, got[key], want)
    # the closed model: 2 callers, each stuck once per stall, so stalled requests are a tiny share
    closed = summary["closed"]["latency_ms"]
    assert closed["p95"] < 100 and got["p95"] > 5 * closed["p95"]
    rows = read_rows(run_dir / "samples" / "closed.csv.gz")
    assert max(float(r["latency_ms"]) for r in rows) > 500  # the stall did happen to the closed callers
    print(f"\nopen model from intended P50/P95/P99 {got['p50']:.0f}/{got['p95']:.0f}/{got['p99']:.0f} ms "
          f"(analytic 10/760/960); closed P95 {closed['p95']:.0f} ms, P99 {closed['p99']:.0f} ms; "
          f"{np.mean([float(r['latency_ms']) > 500 for r in rows]) * 100:.2f} % of closed requests stalled")
