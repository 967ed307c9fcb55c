"""Benchmark of many generators (issue 28): the req/s `bookbench run` drives with one process and with 1, 2 and 4
local Locust workers (`--workers N`) against a trivial target (benchmarks/static_target.py), interleaved rounds, and
the master's CPU at 4 workers; wrk against the same target is the ceiling. Not part of `make test`.

On a 2-core machine the target, the master and every worker share two cores: past 2 workers the generator competes
with itself and the target, so the 4-worker figure says what the master costs more than what 4 machines would do.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from benchmarks.goals import goal
from benchmarks.static_target import Process
from bookbench.artifacts.summary import read as read_summary

ROUNDS = int(os.environ.get("BOOKBENCH_BENCH_ROUNDS", "3"))
SECONDS = 15
WARMUP_S = 3
USERS = 40  # 10 per worker at 4: every process has callers enough to be busy
VARIANTS = {"1 process": 0, "1 worker": 1, "2 workers": 2, "4 workers": 4}  # label -> --workers
# a read-only mix of the two GETs: the static target answers both with a 200 the profile reads as correct
SCENARIOS = f"""version: 1
dataset: {{orgs: 10, providers_per_org: 5, contacts: 10000, appointments: 100000, seed: 3}}
task_mix:
  protocol: rest
  weights: {{checkAvailability: 1, lookupUpcomingAppointment: 1, bookClinicAppointment: 0, cancelAppointment: 0}}
scenarios:
  flat:
    warmup_s: {WARMUP_S}
    stages:
      - {{duration_s: {SECONDS}, users: {USERS}, spawn_rate: {USERS}}}
notifications:
  enabled: false
thresholds:
  global: {{p95_ms: null, error_rate: 0.001, throughput_rps: null}}
"""


@dataclass(frozen=True)
class Measured:
    rps: float  # completed requests per second of the steady window (summary.json)
    master_share: float | None  # the master's mean share of one core over the steady window
    generator_cores: float  # all Locust processes together, cores over the steady window


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc = Process(tmp_path_factory.mktemp("static"))
    yield proc.base_url
    proc.stop()


def _run(url: str, tmp: Path, workers: int) -> Measured:
    tmp.mkdir(parents=True)
    (tmp / "scenarios.yaml").write_text(SCENARIOS)
    done = subprocess.run(
        [sys.executable, "-m", "bookbench", "run", "--scenario-file", str(tmp / "scenarios.yaml"), "--target-url",
         url, "--skip-checks", "--no-report", "--out", str(tmp / "out"), "--workers", str(workers)],
        capture_output=True, text=True, timeout=SECONDS + 180)
    # 1 (NO-GO) still measured the load: a count mismatch is printed beside the figure, never hidden
    assert done.returncode in (0, 1), (done.stdout + done.stderr)[-3000:]
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    if "(counts agree)" not in done.stdout:  # samples == Locust == the target's own count, or which differs
        print("\n" + next((ln.strip() for ln in done.stdout.splitlines() if "requests recorded" in ln), "no counts"))
    flat = read_summary(run_dir).scenarios["flat"]
    # the run's own per-process CPU (psutil, once a second) averaged over the steady window
    cpu = flat.generator.cpu if flat.generator is not None and flat.generator.cpu else {}
    shares = {label: fig.mean_share or 0.0 for label, fig in cpu.items()}
    master = shares.get("master") if workers else None
    return Measured(flat.throughput_rps, master, sum(shares.values()))


def _wrk(url: str) -> float:
    done = subprocess.run(["wrk", "-t2", f"-c{USERS}", f"-d{SECONDS}s", f"{url}/api/v1/providers/1/availability"],
                          capture_output=True, text=True, timeout=SECONDS + 30)
    found = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    assert found, done.stdout + done.stderr
    return float(found[1])


# pytest-timeout's 300 s is for tests; here every run takes up to SECONDS + its set-up, on a machine that may be busy
@pytest.mark.timeout(ROUNDS * len(VARIANTS) * (SECONDS + 120) + 300)
def test_req_per_s_with_1_2_4_local_workers(target: str, tmp_path: Path) -> None:
    """Rounds of every variant in a rotated order (round i starts at variant i): drift falls on each alike."""
    runs: dict[str, list[Measured]] = {label: [] for label in VARIANTS}
    ceiling: list[float] = []
    labels = list(VARIANTS)
    for i in range(ROUNDS):
        for label in labels[i % len(labels):] + labels[:i % len(labels)]:
            measured = _run(target, tmp_path / f"r{i}-{VARIANTS[label]}", VARIANTS[label])
            runs[label].append(measured)
            print(f"\nround {i + 1}, {label}: {measured.rps:,.0f} req/s, Locust {measured.generator_cores:.2f} cores, "
                  f"master {measured.master_share}", flush=True)
        if shutil.which("wrk"):
            ceiling.append(_wrk(target))
    one = statistics.mean(m.rps for m in runs["1 process"])
    print(f"\n{ROUNDS} interleaved round(s) of {SECONDS} s ({WARMUP_S} s warm-up), {USERS} users, static target; "
          f"{os.cpu_count()} cores shared by the target, the master and the workers (load average now "
          f"{os.getloadavg()[0]:.1f})")
    print(f"{'generator':12s} {'req/s (mean)':>12s} {'x 1 process':>12s} {'Locust cores':>13s} {'master %':>9s}  "
          "rounds")
    for label, series in runs.items():
        rps = statistics.mean(m.rps for m in series)
        masters = [m.master_share for m in series if m.master_share is not None]
        master = f"{100 * statistics.mean(masters):8.1f}%" if masters else f"{'-':>9s}"
        cores = statistics.mean(m.generator_cores for m in series)
        print(f"{label:12s} {rps:12,.0f} {rps / one:12.2f} {cores:13.2f} {master}  "
              f"{', '.join(f'{m.rps:,.0f}' for m in series)}")
    if ceiling:
        print(f"{'wrk -t2':12s} {statistics.mean(ceiling):12,.0f} {statistics.mean(ceiling) / one:12.2f}  "
              f"(the ceiling: {', '.join(f'{c:,.0f}' for c in ceiling)})")
    else:
        print("wrk not installed: no ceiling measured (apt-get install wrk)")
    two = statistics.mean(m.rps for m in runs["2 workers"])
    goal("2 local workers / 1 process, req/s", two / one, ">=", 1.7)
    at_four = [m.master_share for m in runs["4 workers"] if m.master_share is not None]
    assert at_four, "no CPU figure for the master at 4 workers in summary.json"
    goal("master CPU at 4 workers, % of one core", 100 * statistics.mean(at_four), "<", 30, " %")
