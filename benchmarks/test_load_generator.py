"""Benchmarks of the load generator itself (issue 3): what exact recording costs against plain Locust, and the
req/s bookbench's Locust reaches against wrk on the same endpoint at 30 connections. Not part of `make test`."""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.goals import goal
from bookbench.config.dataset import DatasetParams, api_key
from bookbench.db import indexes
from bookbench.db.conn import run_with
from bookbench.db.embedded import EmbeddedPostgres
from bookbench.db.seed import seed
from bookbench.pipeline.locust_proc import LOCUSTFILE
from bookbench.pipeline.stack import ServiceProcess

USERS = 30
SECONDS = 15
ROUNDS = 3
PARAMS = DatasetParams(orgs=10, providers_per_org=5, contacts=10_000, appointments=100_000, seed=3)
# one cheap, index-served endpoint, so that the load generator rather than the database sets the pace
MIX = {"protocol": "rest", "weights": {"lookupUpcomingAppointment": 1}, "think_time_s": {"min": 0, "max": 0}}


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pg = EmbeddedPostgres(tmp_path_factory.mktemp("pg"))
    dsn = pg.create_database("bench")
    run_with(dsn, lambda c: seed(c, PARAMS))
    run_with(dsn, lambda c: indexes.apply(c, "recommended"))
    svc = ServiceProcess(dsn, log_path=tmp_path_factory.mktemp("svc") / "service.log")
    svc.start()
    yield svc.base_url
    svc.stop()
    pg.destroy()


def _locust_rps(url: str, tmp: Path, record: bool, workers: int = 0) -> float:
    """Requests per second over a fixed-length run of USERS users; recording on or off (plain Locust)."""
    tmp.mkdir(parents=True, exist_ok=True)
    config = {"format_version": 1,
              "scenario": {"stages": [{"duration_s": SECONDS, "users": USERS}]}, "task_mix": MIX,
              "dataset": {k: v for k, v in PARAMS.public().items() if k != "key_secret"},
              # samples format 3: each process (the local runner, or each worker) writes its own parts
              "samples_dir": str(tmp / "samples" / "bench") if record else None}
    (tmp / "config.json").write_text(json.dumps(config))
    env = {**os.environ, "BOOKBENCH_RUN_CONFIG": str(tmp / "config.json"),
           "BOOKBENCH_RECORD": "1" if record else "0"}
    base = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", url, "--only-summary",
            "--stop-timeout", "5", "--loglevel", "WARNING"]
    procs = []
    if workers:
        procs.append(subprocess.Popen([*base, "--master", "--expect-workers", str(workers), "--json-file",
                                       str(tmp / "stats")], env=env))
        procs += [subprocess.Popen([*base, "--worker"], env=env) for _ in range(workers)]
    else:
        procs.append(subprocess.Popen([*base, "--json-file", str(tmp / "stats")], env=env))
    for proc in procs:
        proc.wait(SECONDS + 60)
    total = sum(int(e["num_requests"]) for e in json.loads((tmp / "stats.json").read_text()))
    return total / SECONDS


def test_recording_overhead_against_plain_locust(target: str, tmp_path: Path) -> None:
    """Interleaved A B A B A B on the same target and users: recorded vs plain."""
    recorded, plain = [], []
    for i in range(ROUNDS):
        plain.append(_locust_rps(target, tmp_path / f"plain{i}", record=False))
        recorded.append(_locust_rps(target, tmp_path / f"rec{i}", record=True))
    ratio = statistics.median(recorded) / statistics.median(plain)
    print(f"\nplain Locust {[round(x) for x in plain]} req/s, with exact recording {[round(x) for x in recorded]} "
          f"req/s: recorded/plain = {ratio:.3f}")
    assert min(plain + recorded) > 0, "a Locust run completed no request"
    goal("requests/s lost to exact recording", 100 * (1 - ratio), "<=", 3, " %")


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed (apt-get install wrk)")
def test_bookbench_against_wrk(target: str, tmp_path: Path) -> None:
    contact = PARAMS.contacts_of(1)[0]
    url = f"{target}/api/v1/contacts/{contact}/appointments/upcoming"
    wrk_rps = []
    ours: dict[str, list[float]] = {"1 process": [], "2 workers": []}
    for i in range(ROUNDS):
        done = subprocess.run(["wrk", "-t2", f"-c{USERS}", f"-d{SECONDS}s", "-H",
                               f"Authorization: Bearer {api_key(1, PARAMS.key_secret)}", url],
                              capture_output=True, text=True, timeout=SECONDS + 30)
        match = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
        assert match, done.stdout + done.stderr
        wrk_rps.append(float(match[1]))
        ours["1 process"].append(_locust_rps(target, tmp_path / f"one{i}", record=True))
        ours["2 workers"].append(_locust_rps(target, tmp_path / f"two{i}", record=True, workers=2))
    wrk = statistics.median(wrk_rps)
    print(f"\nwrk -c{USERS}: {[round(x) for x in wrk_rps]} req/s")
    for label, values in ours.items():
        print(f"bookbench ({label}, recording): {[round(x) for x in values]} req/s")
        goal(f"bookbench ({label}) / wrk requests/s", statistics.median(values) / wrk, ">=", 0.8)
    assert min(wrk_rps) > 0 and all(min(v) > 0 for v in ours.values()), "a load generator completed no request"


def test_recording_hook_cost() -> None:
    """The deterministic part of the overhead: CPU per request of the hook and its flushes, no network."""
    done = subprocess.run([sys.executable, "-m", "benchmarks.hook_cost"], capture_output=True, text=True,
                          timeout=300, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    print("\n" + done.stdout.strip())
    cost = {m[1]: float(m[2]) for m in re.finditer(r"samples (format \d): ([\d.]+) us", done.stdout)}
    # issue 28: the format-3 recorder costs no more than the format-2 one did (3.7 us, idle machine), nor than the
    # format-2 one measured beside it now
    goal("recording hook + flush, samples format 3 (us per request)", cost["format 3"], "<=", 3.7)
    goal("recording cost, format 3 / format 2 measured beside it", cost["format 3"] / cost["format 2"], "<=", 1.0)
