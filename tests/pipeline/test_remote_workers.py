"""Remote Locust workers on loopback: one `bookbench worker` joins a whole run beside a local worker, with the plan its
master sends, a master without a bookbench plan gets no load from it, and a run whose workers never come fails naming
them. (A run of remote workers only, on separate hosts: tests/pipeline/test_workers_netns.py.)"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pyarrow.parquet as pq
import pytest

from bookbench.artifacts import run_config
from bookbench.artifacts.run_config import RemoteJoin, RunConfig
from bookbench.artifacts.sample_parts import process_name
from bookbench.config.scenarios import SHIPPED_SCENARIOS, TaskMix, load_scenarios
from bookbench.db.embedded import free_port
from bookbench.errors import UsageError
from bookbench.load import remote, ship
from bookbench.pipeline.locust_proc import LOCUSTFILE
from bookbench.pipeline.worker import Asker, WorkerOptions, _serve
from tests.budget import budget
from tests.pipeline.test_run import SECRET
from tests.sample_rows import rows as sample_rows

REMOTE = Path(__file__).resolve().parents[1] / "data" / "scenarios_remote.yaml"
# requests a local worker's user may begin after its master recorded the load's end: one or two before the worker's
# loop reads the quit (the loop may be busy a moment, writing a part), one while Locust handles it (it then lets the
# request finish, recorded)
LATE_PER_USER = 3


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One cluster for the file's runs: the second one starts it instead of creating it again."""
    yield tmp_path_factory.mktemp("remote-pg")


def _run(tmp: Path, data_dir: Path, port: int, *args: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    done = subprocess.run(
        [sys.executable, "-m", "bookbench", "run", "--scenario-file", str(REMOTE), "--out", str(tmp / "out"),
         "--data-dir", str(data_dir), "--key-secret", SECRET, "--skip-checks", "--remote-workers", "1",
         "--allow-remote", "--master-port", str(port), *args],
        capture_output=True, text=True, timeout=budget(300))
    assert "Traceback" not in done.stdout + done.stderr, (done.stdout + done.stderr)[-3000:]
    return done, Path(done.stdout.strip().splitlines()[-1])


def _worker(tmp: Path, port: int, wait_s: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bookbench", "worker", "--master-host", "127.0.0.1", "--master-port", str(port),
         "--wait", str(wait_s), "--log-dir", str(tmp / "worker")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "BOOKBENCH_KEY_SECRET": SECRET})


def _leftovers(data_dir: Path, port: int) -> list[list[str]]:
    """Processes of these runs still alive: their PostgreSQL, or any Locust process on their master port."""
    time.sleep(0.5)
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmd = proc.info["cmdline"] or []
        if proc.info["status"] != psutil.STATUS_ZOMBIE and (
                str(data_dir) in " ".join(cmd) or ("locust" in cmd and str(port) in cmd)):
            found.append(cmd)
    return found


# Locust's master logs this as its shape ends the load, just before it quits and tells its workers (local time)
_STOPPING = re.compile(r"^\[(?P<at>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\] [^\n]*: Shape test stopping$", re.M)


def _load_end(run_dir: Path, scenario: str) -> float:
    """When the scenario's load ended, as its Locust master recorded it (epoch s)."""
    [at] = _STOPPING.findall((run_dir / "logs" / f"locust_{scenario}_master.log").read_text())
    return dt.datetime.strptime(at, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def _rows_by_process(run_dir: Path, files: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each sealed samples file's rows (typed), by its load process (the file's stem); its rows as recorded."""
    found = {Path(f["path"]).stem: pq.read_table(run_dir / f["path"]).to_pylist() for f in files}
    assert {Path(f["path"]).stem: f["rows"] for f in files} == {k: len(v) for k, v in found.items()}, files
    return found


@pytest.mark.integration
@pytest.mark.slow
def test_a_remote_worker_beside_a_local_one_serves_every_scenario_with_the_masters_plan(
        tmp_path: Path, data_dir: Path) -> None:
    """The README's distributed run: local workers and remote ones in the same scenarios (one of each here)."""
    # the worker's own scenarios.yaml books; the run's plan only checks availability
    assert load_scenarios(SHIPPED_SCENARIOS).task_mix.weights["bookClinicAppointment"] > 0
    port = free_port()
    worker = _worker(tmp_path, port, wait_s=120)  # started first: it waits for the run's first master
    try:
        done, run_dir = _run(tmp_path, data_dir, port, "--workers", "1")
        out, _ = worker.communicate(timeout=budget(60))  # it leaves by itself after the last scenario
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    assert done.returncode == 0, done.stdout[-3000:]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed", manifest["reason"]
    assert "bookbench worker --master-host 127.0.0.1 --master-port " + str(port) in done.stdout
    assert worker.returncode == 0, out
    assert f"joined run {run_dir.name}" in out and "served 2 scenario(s): first, second" in out, out
    for name in ("first", "second"):
        entry = manifest["scenarios"][name]
        assert entry["status"] == "completed"
        rows = sample_rows(run_dir, name)
        counts = entry["counts"]
        # the remote worker recorded on its own machine and sent its parts over Locust's channel at the end, the
        # local one wrote into the run folder: both are in it, sealed and recorded, and the three counts agree
        assert rows and counts["samples"] == len(rows) == counts["locust"] == counts["service"], counts
        receipt = json.loads(ship.receipt_path(run_dir / "samples" / name).read_text())
        assert receipt["problems"] == [] and len(receipt["expected"]) == 1, receipt
        [remote_id] = receipt["expected"]  # the local worker announced nothing: the master awaited only this one
        remote_process = process_name(remote_id)
        by_process = _rows_by_process(run_dir, entry["samples_files"])
        assert sorted(by_process) == sorted(["w1", remote_process]), by_process.keys()
        local, far = by_process["w1"], by_process[remote_process]
        assert local and far and len(local) + len(far) == len(rows)
        # the remote parts crossed as they were, and the master's seal merged them into that worker's one file
        [delivered] = receipt["delivered"].values()
        assert delivered and all(n.startswith(f"{remote_process}-") for n in delivered), receipt
        assert sum(delivered.values()) == len(far), receipt
        # each process's rows carry its own Locust id (no local runner's), and the remote worker sent the run's mix
        # (availability only), not its own scenarios.yaml's
        assert {r["worker"] for r in far} == {remote_id}
        [local_id] = {r["worker"] for r in local}
        assert local_id not in (remote_id, "local"), local_id
        assert {r["name"] for r in rows} == {"checkAvailability"}
        # the local worker stopped with the load, not after the remote transfer: the master tells it to quit
        # before it waits for the remote samples. A worker left loading through the transfer starts many requests
        # after the end (17 to 26 in a scenario of this run, 1 user, with that quit taken out of load/collect.py)
        end = _load_end(run_dir, name)
        late = sorted(r["ts"] - end for r in local if r["ts"] > end)
        users = max(r["users"] for r in local)
        print(f"{name}: {len(local)} local + {len(far)} remote rows; local requests begun after the load's end "
              f"({users} user(s)): {[round(s, 3) for s in late]} s")
        # how many begin before the quit lands grows with how late it lands: the idle bound stretched like a wait
        # (seen: 4 within 0.15 s beside two busy loops), still far below the 17-26 of a worker never told to quit
        assert len(late) <= budget(LATE_PER_USER) * users and all(s < budget(1.0) for s in late), (users, late)
        plan = (run_dir / "config" / f"{name}_plan.py").read_text()
        assert SECRET not in plan
    assert SECRET not in out
    # the master confirmed each file: the worker's own copies are gone, and it said nothing was kept
    assert not list((tmp_path / "worker" / "samples").glob("*/*.parquet")) and "did not confirm" not in out
    assert "remote samples:" not in done.stdout
    # no process left behind: the master, its local worker (on the same master port), the remote worker's Locust
    # processes and the cluster
    assert _leftovers(data_dir, port) == []


@pytest.mark.integration
@pytest.mark.slow
def test_a_run_whose_workers_never_come_fails_naming_them(tmp_path: Path, data_dir: Path) -> None:
    port = free_port()
    done, run_dir = _run(tmp_path, data_dir, port, "--worker-wait", "8")
    assert done.returncode == 3, done.stdout[-3000:]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert manifest["reason"].startswith("gave up waiting for workers: 0 of 1 connected after "), manifest["reason"]
    assert "Locust exited with code" not in manifest["reason"]
    first = manifest["scenarios"]["first"]
    assert first["status"] == "aborted" and first["fault"] == "load generator", first
    assert manifest["scenarios"]["second"]["status"] == "not run"
    assert "waiting for remote workers: 0 of 1 connected" in done.stdout  # said while it waited
    assert _leftovers(data_dir, port) == []


@pytest.mark.integration
def test_a_worker_and_a_locust_worker_refuse_a_master_without_a_plan(tmp_path: Path) -> None:
    port = free_port()
    # a plain Locust master (bookbench's locustfile by hand, as the README once said): it has no plan to give
    master = subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--master", "--master-bind-host", "127.0.0.1",
         "--master-bind-port", str(port), "--headless", "--expect-workers", "1", "--expect-workers-max-wait", "60",
         "--host", "http://127.0.0.1:9"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        worker = _worker(tmp_path, port, wait_s=30)
        out, _ = worker.communicate(timeout=budget(60))
        # a Locust worker started for a plan checks, before it connects, that the master listening is that plan's
        config = tmp_path / "late.json"
        run_config.write(config, RunConfig(task_mix=TaskMix(weights={"checkAvailability": 1}), remote=RemoteJoin(
            plan_key="run-1:1", master_host="127.0.0.1", master_port=port)))
        late = subprocess.run([sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker", "--master-port",
                               str(port)], capture_output=True, text=True, timeout=budget(60),
                              env={**os.environ, "BOOKBENCH_RUN_CONFIG": str(config)})
    finally:
        master.kill()
        master.wait()
    assert worker.returncode == 2, out
    assert "sent no bookbench plan" in out and "locustfile.py" in out, out
    assert not list((tmp_path / "worker").glob("*.json"))  # no config written, no Locust worker started
    assert late.returncode == remote.MISSED, late.stderr[-2000:]
    assert "sent no bookbench plan" in late.stderr


@pytest.mark.integration
def test_a_hand_started_locust_worker_refuses_to_run_without_a_plan() -> None:
    env = {k: v for k, v in os.environ.items() if k != "BOOKBENCH_RUN_CONFIG"}
    done = subprocess.run([sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker", "--master-port",
                           str(free_port())], capture_output=True, text=True, timeout=budget(60), env=env)
    assert done.returncode != 0
    assert "bookbench worker --master-host" in done.stderr, done.stderr[-2000:]


def _plan() -> remote.Plan:
    config = RunConfig.model_validate(
        {"scenario_name": "s", "scenario": {"stages": [{"duration_s": 3, "users": 2}]},
         "task_mix": {"weights": {"checkAvailability": 1}}, "dataset": {"orgs": 3}, "target": {"profile": "x"}})
    return remote.Plan("run-1", "s", 1, 2, config, "version: 1\n", remote.bookbench_version(),
                       "http://127.0.0.1:8000")


def test_a_plan_is_read_from_the_module_text_without_running_it() -> None:
    plan = _plan()
    text = remote.module_text(plan) + "raise SystemExit('this file is never executed')\n"
    assert remote.read_plan([{"filename": "s_plan.py", "contents": text}], "h:1") == plan


def test_a_plan_from_another_version_or_incomplete_is_refused() -> None:
    raw = json.loads(_plan().to_json())
    with pytest.raises(remote.PlanError, match="install the same version"):
        remote.parse_plan({**raw, "bookbench": "0.0.0-other"}, "h:1")
    with pytest.raises(remote.PlanError, match=r"incomplete or invalid.*scenario\.stages"):
        remote.parse_plan({**raw, "config": {**raw["config"], "scenario": {"stages": "many"}}}, "h:1")
    with pytest.raises(remote.PlanError, match=r"incomplete or invalid.*samples_path"):
        remote.parse_plan({**raw, "config": {**raw["config"], "samples_path": 7}}, "h:1")
    with pytest.raises(remote.PlanError, match="sent no bookbench plan"):
        remote.read_plan([{"filename": "locustfile.py", "contents": "BOOKBENCH_PLAN = compute()\n"}], "h:1")


class _Fixed(Asker):
    """The master's answer given, not asked over the network: the refusal below happens before any Locust starts."""

    def __init__(self, plan: remote.Plan) -> None:
        self.plan = plan

    def next_plan(self, seen: str) -> remote.Plan | None:
        return self.plan


@pytest.mark.netns  # names a non-loopback address: runs inside a loopback-only namespace
def test_a_worker_sends_no_load_off_loopback_without_allow_remote(tmp_path: Path) -> None:
    plan = dataclasses.replace(_plan(), target_url="http://10.11.12.13:8000")
    opts = WorkerOptions("127.0.0.1", 5557, 5, tmp_path)
    with pytest.raises(UsageError, match=r"the run's target.*--allow-remote"):
        _serve(opts, _Fixed(plan), print)
    assert list(tmp_path.iterdir()) == []  # nothing written, no Locust started
    # a master on another machine whose target is its own loopback: from here that address is this machine
    elsewhere = WorkerOptions("10.11.12.13", 5557, 5, tmp_path)
    with pytest.raises(remote.PlanError, match="on the master's loopback"):
        _serve(elsewhere, _Fixed(_plan()), print)
