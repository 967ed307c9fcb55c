"""`bookbench worker`: one process on a load machine that joins a whole distributed run.

For each scenario of the run it asks the master for that scenario's plan (bookbench.load.remote), starts a Locust
worker with exactly that plan and the installed locustfile, and waits for it to end with the scenario. A run's master
listens on one port for the whole run, so the next scenario's master is found where the last one was. The worker
exits 0 once it served the run's last scenario (the plan says which one is last), and exits 3 when no master
answers for `wait_s`: before the run's first scenario, or between two scenarios (the run ended early).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bookbench.artifacts import run_config
from bookbench.artifacts.run_config import RemoteJoin
from bookbench.config.targets import is_loopback, pin_loopback
from bookbench.errors import EnvironmentFailure
from bookbench.load import remote
from bookbench.pipeline.locust_proc import LOCUSTFILE
from bookbench.target import profile as target_profile


@dataclass(frozen=True)
class WorkerOptions:
    master_host: str
    master_port: int
    wait_s: float  # how long to wait for a master: before the first scenario and between two
    work_dir: Path  # the plans, configs and Locust logs of this worker
    allow_remote: bool = False  # load a target that is not on loopback (as `run --allow-remote`)


def work_dir(given: Path | None) -> Path:
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        return given
    return Path(tempfile.mkdtemp(prefix="bookbench-worker-"))  # private (0700): logs and plans only


class Asker:
    """The child that asks the master for plans (bookbench.load.remote): started once, one line per question."""

    def __init__(self, opts: WorkerOptions) -> None:
        self.opts = opts
        # it imports Locust, which would patch this process for gevent; there it needs no patch either
        env = {**os.environ, "LOCUST_SKIP_MONKEY_PATCH": "1"}
        self.log = opts.work_dir / "asker.log"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "bookbench.load.remote"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=log, text=True, env=env)

    def next_plan(self, seen: str) -> remote.Plan | None:
        """The next plan (not `seen`), None when no master answered within wait_s; PlanError refuses."""
        where = f"{self.opts.master_host}:{self.opts.master_port}"
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(json.dumps({"host": self.opts.master_host, "port": self.opts.master_port,
                                              "wait_s": self.opts.wait_s, "seen": seen}) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except BrokenPipeError:
            line = ""
        if not line:
            raise EnvironmentFailure(f"asking {where} for the run's plan failed: the asking process exited "
                                     f"(code {self.proc.poll()}; see {self.log})")
        reply = json.loads(line)
        if "refused" in reply:
            raise remote.PlanError(str(reply["refused"]))
        return None if reply.get("none") else remote.parse_plan(reply["plan"], where)

    def close(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()  # its end of input: it exits
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def _materialise(plan: remote.Plan, opts: WorkerOptions) -> Path:
    """The plan as the files the installed locustfile reads: its run config, and the profile it names."""
    name = _safe(plan.scenario)
    profile_path = opts.work_dir / f"{name}.profile.yaml"
    profile_path.write_text(plan.profile_text)
    prof = target_profile.load(str(profile_path))
    if prof.auth.credentials.source == "file":
        raise remote.PlanError(f"the run's profile {prof.name} reads its credentials from a file beside the master "
                               f"({prof.auth.credentials.file}), which a remote worker does not have: use "
                               "credentials source env or dataset for a distributed run")
    if prof.pools.source == "csv" and not plan.config.target.tenants:
        raise remote.PlanError(f"the run's profile {prof.name} lists its tenants in a CSV file the master did not "
                               "send")
    config = plan.config.model_copy(update={
        "target": plan.config.target.model_copy(update={"profile": str(profile_path)}),
        # its own samples, sent to the master when the scenario ends (bookbench.load.ship)
        "samples_dir": str(samples_dir(plan, opts)),
        # the Locust worker checks at start that this plan's master is still the one listening
        "remote": RemoteJoin(plan_key=plan.key, master_host=opts.master_host, master_port=opts.master_port)})
    config_path = opts.work_dir / f"{name}.json"
    run_config.write(config_path, config)
    return config_path


def samples_dir(plan: remote.Plan, opts: WorkerOptions) -> Path:
    """Where this worker records one scenario of one run: a folder of its own, so that no other run's or
    scenario's parts are ever sealed with these."""
    return opts.work_dir / "samples" / f"{_safe(plan.run_id)}_{plan.index}_{_safe(plan.scenario)}"


def _left_behind(plan: remote.Plan, opts: WorkerOptions) -> list[Path]:
    """Samples files the master did not acknowledge: a whole file goes from here once the master kept it."""
    folder = samples_dir(plan, opts)
    return sorted(folder.glob("*.parquet")) if folder.is_dir() else []


def _check_target(plan: remote.Plan, opts: WorkerOptions) -> None:
    """The loopback rule holds on this machine too (load goes elsewhere only with this worker's --allow-remote),
    and a master's loopback target is not this machine's."""
    pin_loopback(plan.target_url, "the run's target", opts.allow_remote)
    master = f"[{opts.master_host}]" if ":" in opts.master_host else opts.master_host  # an IPv6 address
    if is_loopback(plan.target_url) and not is_loopback(f"http://{master}"):
        raise remote.PlanError(f"the run's target {plan.target_url} is on the master's loopback; from this machine "
                               "that address is this machine: give the run a --target-url the workers can reach")


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "scenario"


def _run_locust(opts: WorkerOptions, plan: remote.Plan, say: Callable[[str], None]) -> int:
    config_path = _materialise(plan, opts)
    log_path = opts.work_dir / f"locust_{_safe(plan.scenario)}_worker.log"
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker", "--master-host", opts.master_host,
           "--master-port", str(opts.master_port), "--loglevel", "INFO"]
    # the secret comes from this process's environment (BOOKBENCH_KEY_SECRET) and goes nowhere else
    env = {**os.environ, "BOOKBENCH_RUN_CONFIG": str(config_path)}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    say(f"scenario {plan.scenario} ({plan.index} of {plan.total}): Locust worker pid {proc.pid}, log {log_path}")
    try:
        return proc.wait()
    except KeyboardInterrupt:
        _stop(proc)
        raise


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT to its group (Locust tells the master it quits), SIGKILL after 10 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


@dataclass
class Served:
    run_id: str
    done: list[str]  # scenarios whose Locust worker ended normally (the master told it to quit)
    failed: list[str]  # scenarios whose Locust worker exited with an error


def serve(opts: WorkerOptions, say: Callable[[str], None]) -> Served:
    """Serve one run from the first plan found to its last scenario. Raises EnvironmentFailure when no master
    answers for wait_s, PlanError (exit 2) for a plan it must refuse."""
    asker = Asker(opts)
    try:
        return _serve(opts, asker, say)
    finally:
        asker.close()


def _serve(opts: WorkerOptions, asker: Asker, say: Callable[[str], None]) -> Served:
    where = f"{opts.master_host}:{opts.master_port}"
    joined: remote.Plan | None = None
    served: list[str] = []
    failed: list[str] = []
    seen = "-"
    while True:
        plan = asker.next_plan(seen)
        if plan is None:
            if joined is None:
                raise EnvironmentFailure(f"no bookbench master at {where} within {opts.wait_s:g} s (start the run "
                                         "first, or give --wait more time)")
            raise EnvironmentFailure(f"run {joined.run_id}: no master at {where} for {opts.wait_s:g} s after "
                                     f"scenario {seen.rsplit(':', 1)[-1]} of {joined.total}; the run ended early "
                                     f"(see its manifest); served: {', '.join(served) or 'none'}")
        _check_target(plan, opts)
        if joined is None:
            joined = plan
            say(f"joined run {plan.run_id} at {where}: {plan.total} scenario(s); this worker runs only the plans its "
                "master sends")
        elif plan.run_id != joined.run_id:
            raise EnvironmentFailure(f"the master at {where} now runs run {plan.run_id}; this worker joined run "
                                     f"{joined.run_id}, which ended before its last scenario; served: "
                                     f"{', '.join(served) or 'none'}")
        code = _run_locust(opts, plan, say)
        seen = plan.key
        if kept := _left_behind(plan, opts):
            say(f"scenario {plan.scenario}: {len(kept)} samples file(s) the master did not confirm are kept in "
                f"{kept[0].parent}")
        if code == 0:
            served.append(plan.scenario)
            say(f"scenario {plan.scenario} done")
        elif code == remote.MISSED:
            say(f"scenario {plan.scenario} ended before this worker could join it; waiting for the next")
        else:
            failed.append(plan.scenario)
            say(f"scenario {plan.scenario}: the Locust worker exited with code {code} (see "
                f"{opts.work_dir}/locust_{_safe(plan.scenario)}_worker.log)")
        if plan.index >= plan.total:
            return Served(joined.run_id, served, failed)
        say(f"waiting up to {opts.wait_s:g} s for scenario {plan.index + 1} of {plan.total}")
