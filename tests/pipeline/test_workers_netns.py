"""A distributed run whose master, two workers and target are different hosts on a wire (network namespaces the
test makes, tests/netns.py `lan()`): the load crosses veth pairs and a bridge, as between machines, and the run's
counts agree: samples == Locust's count == the target's own, every worker's rows present, and the target saw the
scenario's load come from the workers' addresses only."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.static_target import Process
from tests import sample_rows
from tests.budget import budget
from tests.netns import Host, lan

MASTER_PORT = 5557  # the default: on a host of its own nothing else holds it
# one short scenario, an availability-only mix the static target answers with a 200 the profile reads as correct
SCENARIOS = """version: 1
dataset: {orgs: 3, providers_per_org: 3, contacts: 300, appointments: 3000, seed: 7}
task_mix:
  protocol: rest
  weights: {checkAvailability: 1, lookupUpcomingAppointment: 0, bookClinicAppointment: 0, cancelAppointment: 0}
scenarios:
  wire:
    warmup_s: 1
    stages:
      - {duration_s: 6, users: 6}
notifications:
  enabled: false
thresholds:
  global: {p95_ms: null, error_rate: 0.001, throughput_rps: null}
"""


def _worker(host: Host, master: Host, log_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*host.prefix, sys.executable, "-m", "bookbench", "worker", "--master-host", master.address, "--master-port",
         str(MASTER_PORT), "--allow-remote", "--wait", str(int(budget(60))), "--log-dir", str(log_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_master_workers_and_target_on_separate_hosts_agree_on_counts(tmp_path: Path) -> None:
    (tmp_path / "scenarios.yaml").write_text(SCENARIOS)
    with lan(["target", "master", "w1", "w2"]) as hosts:
        master = hosts["master"]
        target = Process(tmp_path, host=hosts["target"].address, prefix=hosts["target"].prefix)
        workers = {name: _worker(hosts[name], master, tmp_path / name) for name in ("w1", "w2")}
        try:
            done = subprocess.run(
                [*master.prefix, sys.executable, "-m", "bookbench", "run", "--scenario-file",
                 str(tmp_path / "scenarios.yaml"), "--target-url", target.base_url, "--allow-remote",
                 "--remote-workers", "2", "--master-bind", master.address, "--master-port", str(MASTER_PORT),
                 "--worker-wait", str(int(budget(60))), "--skip-checks", "--no-report", "--out",
                 str(tmp_path / "out")],
                capture_output=True, text=True, timeout=budget(150), env={**os.environ, "COLUMNS": "200"})
            outs = {name: proc.communicate(timeout=budget(60))[0] for name, proc in workers.items()}
        finally:
            for proc in workers.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
            target.stop()
        peers = target.final_counts()
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    for name, out in outs.items():
        assert workers[name].returncode == 0 and "served 1 scenario(s): wire" in out, out[-2000:]
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed", manifest["reason"]
    entry = manifest["scenarios"]["wire"]
    counts = entry["counts"]
    # the three counts agree, the target's own (its /stats, read by the master across the wire) among them
    assert counts["samples"] > 0 and counts["samples"] == counts["locust"] == counts["service"], counts
    by_worker = collections.Counter(row["worker"] for row in sample_rows.rows(run_dir, "wire"))
    assert sum(by_worker.values()) == counts["samples"], by_worker
    # both remote workers' rows are in the run folder, and no request was made by a local runner
    assert len(by_worker) == 2 and "local" not in by_worker and min(by_worker.values()) > 0, by_worker
    # on the wire: the scenario's requests came from the two workers' addresses, each its share; the master's
    # address sent only the warm-up (before the scenario), and nothing else reached the target
    w1, w2 = hosts["w1"].address, hosts["w2"].address
    assert set(peers) <= {w1, w2, master.address}, peers
    assert peers.get(w1, 0) > 0 and peers.get(w2, 0) > 0, peers
    assert peers[w1] + peers[w2] == counts["samples"], (peers, counts)
    assert sorted(by_worker.values()) == sorted([peers[w1], peers[w2]]), (by_worker, peers)
