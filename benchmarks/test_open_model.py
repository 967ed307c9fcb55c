"""Benchmarks of the open model (printed, never gated on a timing):

1. Cross-check: bookbench's open model and an independent open-loop generator from npm (`loadtest`, installed into
   a cache folder on first use; skipped without node/npm) at the same rate against the known-answer target
   (tests/load/stall_target.py: 10 ms service, a 1 s stall every 5 s); the ratio of their percentiles.
2. The highest arrival rate one Locust process sustains with exact recording before it falls behind its schedule
   (send lateness P99 > 10 ms, arrivals dropped, or under 95 % of the offered rate sent), and with --workers 2,
   against the same target without stalls (1 ms service).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

from bookbench.db.embedded import free_port
from tests.load.stall_target import expected_latency_ms

pytestmark = [pytest.mark.bench, pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(1800)]
ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "tests" / "load" / "stall_target.py"
STALL_FILE = ROOT / "tests" / "data" / "scenarios_stall.yaml"
NPM_DIR = Path(tempfile.gettempdir()) / "bookbench-loadtest"


@contextmanager
def target(*args: str) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(TARGET), str(port), *args])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(url, timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def run_open(url: str, rate: float, seconds: float, out: Path, workers: int = 0) -> dict:  # type: ignore[type-arg]
    spec = yaml.safe_load(STALL_FILE.read_text())
    spec["scenarios"]["open"]["stages"] = [{"duration_s": seconds, "arrival_rate": rate}]
    spec["scenarios"]["open"]["max_in_flight"] = 1000
    path = out / "scenarios.yaml"
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec))
    done = subprocess.run([sys.executable, "-m", "bookbench", "run", "--scenario-file", str(path), "--scenarios",
                           "open", "--target-url", url, "--skip-checks", "--out", str(out), "--workers", str(workers)],
                          capture_output=True, text=True, timeout=600)
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    return dict(json.loads((run_dir / "summary.json").read_text())["scenarios"]["open"])


def test_cross_check_against_an_independent_generator(tmp_path: Path) -> None:
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("node and npm are needed for the independent generator")
    loadtest = NPM_DIR / "node_modules" / ".bin" / "loadtest"
    if not loadtest.exists():
        NPM_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "loadtest@8"], cwd=NPM_DIR,
                       check=True, timeout=300)
    with target() as url:
        ours = run_open(url, 40, 10, tmp_path / "ours")["open_model"]["latency_from_intended_ms"]
        text = subprocess.run([str(loadtest), "-c", "1", "--rps", "40", "-t", "10", "-k",
                               f"{url}/api/v1/contacts/1/appointments/upcoming"],
                              capture_output=True, text=True, timeout=120).stdout
    theirs = {int(q): float(ms) for q, ms in re.findall(r"^\s+(\d+)%\s+(\d+) ms", text, re.M)}
    print("\n            analytic  bookbench  loadtest  ratio")
    for q in (50, 95, 99):
        want = expected_latency_ms(q / 100, 10.0, 5.0, 1.0)
        mine = ours[f"p{q}"]
        print(f"  P{q:<3}     {want:7.0f}  {mine:9.1f}  {theirs[q]:8.0f}  {mine / theirs[q]:.3f}")


@pytest.mark.parametrize("workers", [0, 2])
def test_highest_sustained_arrival_rate(workers: int, tmp_path: Path) -> None:
    results = []
    with target("1", "1000", "0") as url:
        for rate in (250, 500, 1000, 1500, 2000, 3000, 4000, 6000):
            sc = run_open(url, rate, 8, tmp_path / f"r{rate}", workers)
            om = sc["open_model"]
            sent_share = sc["requests"] / om["offered"] if om["offered"] else 0.0
            late = om["send_lateness_ms"]["p99"]
            ok = om["dropped"] == 0 and late is not None and late < 10 and sent_share >= 0.95
            results.append((rate, sc["throughput_rps"], late, om["dropped"], ok))
            if not ok:
                break
    best = max((r for r, *_, ok in results if ok), default=None)
    print(f"\n{workers or 'one local'} {'worker(s)' if workers else 'runner'}: rate, sent/s, lateness P99 ms, dropped")
    for rate, sent, late, dropped, ok in results:
        print(f"  {rate:5d}  {sent:7.0f}  {late if late is not None else float('nan'):8.1f}  {dropped:6d}"
              f"  {'sustained' if ok else 'FELL BEHIND'}")
    print(f"  highest sustained: {best}/s")
