"""The plan a run's Locust master hands its remote workers, and how `bookbench worker` asks for it.

Why a plan travels at all: a worker that loads its own locustfile reads its own machine's scenarios.yaml, so it can
send a mix the run never asked for (an availability-only plan once got 372 bookings from a remote worker). So, per
scenario, the master's Locust loads beside the locustfile a small generated module whose only statement is the run's
plan as a JSON string: scenario, task mix, dataset layout, target profile text, and where it sits in the run. No
secret and none of the master's file paths are in it. Locust hands every file its master loaded to a worker that
asks (the "locustfile" message of `locust -f -`); `bookbench worker` asks in that way, reads the plan out of the file
as data (with `ast`: the file is never executed on the worker) and runs its own installed locustfile with exactly
that plan. A master without a plan (plain Locust, another tool) gets no load from it.

`python -m bookbench.load.remote` is the asking side: it imports Locust, so the worker command runs it as a child
(and stays an ordinary process itself) for its whole life, which also spares a Locust import per scenario. It reads
one request per line on stdin ({"host", "port", "wait_s", "seen"}) and answers each with one line on stdout:
{"plan": ...}, {"none": true} (no master answered within wait_s) or {"refused": "why"}.
"""

from __future__ import annotations

import ast
import json
import socket
import sys
import time
import uuid
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from bookbench.artifacts import run_config
from bookbench.artifacts.files import replace_atomically
from bookbench.artifacts.run_config import RemoteJoin, RunConfig, TargetRef, TenantIds
from bookbench.errors import ArtifactError, UsageError

PLAN_FORMAT = "bookbench-plan"
PLAN_VERSION = 1
PLAN_VARIABLE = "BOOKBENCH_PLAN"
# a Locust worker started for a plan whose master is no longer the one listening exits with this (EX_TEMPFAIL)
MISSED = 75


class PlanError(UsageError):
    """What a master handed over is not a plan this worker can run; the worker refuses it."""

    label = "refused"


def bookbench_version() -> str:
    try:
        return metadata.version("bookbench")
    except metadata.PackageNotFoundError:  # a source tree without an installed distribution
        return "unknown"


@dataclass(frozen=True)
class Plan:
    run_id: str
    scenario: str
    index: int  # 1-based place of this scenario in the run
    total: int  # scenarios the run has: a worker that served the last one is done
    config: RunConfig  # the locustfile's run config, without the master's paths
    profile_text: str  # the target profile file, verbatim
    bookbench: str  # the master's bookbench version
    target_url: str  # where the load goes (Locust's --host): the worker judges it by the loopback rule

    @property
    def key(self) -> str:
        return f"{self.run_id}:{self.index}"

    def to_json(self) -> str:
        return json.dumps({"format": PLAN_FORMAT, "version": PLAN_VERSION, "bookbench": self.bookbench,
                           "run_id": self.run_id, "scenario": self.scenario, "index": self.index,
                           "total": self.total, "config": self.config.model_dump(mode="json"),
                           "profile_text": self.profile_text,
                           "target_url": self.target_url},
                          sort_keys=True)


def plan_for(config: RunConfig, target_url: str, run_id: str, index: int, total: int) -> Plan:
    """The plan of one scenario from the run config the master's locustfile reads (config/<scenario>.json)."""
    from bookbench.target import pools as target_pools
    from bookbench.target import profile as target_profile

    profile_path = Path(str(config.target.profile))
    tenants = config.target.tenants
    if tenants is None:
        prof = target_profile.load(str(profile_path))
        if prof.pools.source == "csv":
            # the CSV lives beside the master's profile; the worker gets the tenants it lists, not a path
            tenants = [TenantIds(id=t.id, contacts=list(t.contacts), providers=list(t.providers))
                       for t in target_pools.tenants(prof.pools, None)]
    # the profile's text travels beside it (profile_text); the master's path means nothing there
    public = config.without_paths().model_copy(update={"target": TargetRef(profile=profile_path.name,
                                                                           tenants=tenants)})
    return Plan(run_id, config.scenario_name, index, total, public, profile_path.read_text(), bookbench_version(),
                target_url)


def module_text(plan: Plan) -> str:
    """The generated module: a docstring and one assignment of a string constant."""
    return (f'"""Plan of bookbench run {plan.run_id}, scenario {plan.scenario} ({plan.index} of {plan.total}): '
            "loaded by the run's Locust master\nbeside the locustfile so that Locust hands it to each worker that "
            "asks. `bookbench worker` reads\nBOOKBENCH_PLAN as data and never runs this file; it holds no secret."
            f'"""\n\n{PLAN_VARIABLE} = {plan.to_json()!r}\n')


def write_module(plan: Plan, path: Path) -> Path:
    replace_atomically(path, module_text(plan))
    return path


def _plan_string(source: str) -> str | None:
    """The string assigned to BOOKBENCH_PLAN in `source`, read without running it; None when there is none."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == PLAN_VARIABLE and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)):
            return node.value.value
    return None


def read_plan(files: list[Any], where: str) -> Plan:
    """The plan among the files a master handed over (Locust's list of {filename, contents} or URLs), validated;
    PlanError naming what is wrong otherwise."""
    names = [str(f.get("filename")) if isinstance(f, dict) else str(f) for f in files]
    texts = [_plan_string(str(f.get("contents", ""))) for f in files if isinstance(f, dict)]
    found = [t for t in texts if t is not None]
    if not found:
        raise PlanError(f"the Locust master at {where} sent no bookbench plan (its locustfiles: "
                        f"{', '.join(names) or 'none'}): a plain Locust master, or a bookbench without remote "
                        "plans; this worker runs only a plan a bookbench run gives it")
    try:
        raw = json.loads(found[0])
    except ValueError as exc:
        raise PlanError(f"the plan from {where} is not valid JSON ({exc})") from None
    return parse_plan(raw, where)


def parse_plan(raw: Any, where: str) -> Plan:
    if not isinstance(raw, dict) or raw.get("format") != PLAN_FORMAT:
        raise PlanError(f"the plan from {where} is not a bookbench plan")
    if raw.get("version") != PLAN_VERSION:
        raise PlanError(f"the plan from {where} has version {raw.get('version')}; this worker reads version "
                        f"{PLAN_VERSION}: install the master's bookbench ({raw.get('bookbench')}) here")
    mine = bookbench_version()
    if raw.get("bookbench") != mine:
        raise PlanError(f"the master at {where} runs bookbench {raw.get('bookbench')}, this worker {mine}: the "
                        "samples they exchange must have one format, install the same version on both")
    try:
        config = run_config.parse(raw["config"], "its run config")
        if config.scenario is None:
            raise ValueError("its run config has no scenario")
        plan = Plan(str(raw["run_id"]), str(raw["scenario"]), int(raw["index"]), int(raw["total"]), config,
                    str(raw["profile_text"]), str(raw["bookbench"]), str(raw["target_url"]))
    except (KeyError, TypeError, ValueError, ArtifactError) as exc:
        raise PlanError(f"the plan from {where} is incomplete or invalid: {' '.join(str(exc).split())[:300]}") \
            from None
    if not 1 <= plan.index <= plan.total:
        raise PlanError(f"the plan from {where} says scenario {plan.index} of {plan.total}")
    return plan


# -- the asking side (run as a child: it imports Locust) ---------------------------------------------------------
# how long one request waits for the master's reply; a request sent before the master listens is delivered when it
# does, so back-to-back requests miss no master that appears
REPLY_WAIT_S = 2.0
# the master that answered with the plan just served is still shutting down: ask again after this long
SEEN_AGAIN_S = 1.0


def _ask_once(host: str, port: int) -> list[Any] | None:
    """One "locustfile" request to the master at host:port; its list of files, or None without an answer."""
    import gevent
    from locust import __version__ as locust_version
    from locust.rpc import Message, zmqrpc

    client_id = f"{socket.gethostname()}_bookbench_plan_{uuid.uuid4().hex}"
    # Locust's RPC layer is untyped; these are the calls `locust -f -` makes to fetch a master's locustfiles
    client = zmqrpc.Client(host, port, client_id)  # type: ignore[no-untyped-call]
    try:
        client.send(Message("locustfile", {"version": locust_version}, client_id))  # type: ignore[no-untyped-call]
        msg = None
        with gevent.Timeout(REPLY_WAIT_S, False):
            msg = client.recv()  # type: ignore[no-untyped-call]
    finally:
        client.close(linger=0)  # type: ignore[no-untyped-call]  # an unanswered request must not reach a master that appears later
    if msg is None or msg.type != "locustfile" or not isinstance(msg.data, dict):
        return None
    if "error" in msg.data:
        return [{"filename": "(error)", "contents": ""}]
    files = msg.data.get("locustfiles")
    return list(files) if isinstance(files, list) else None


def ask(host: str, port: int, wait_s: float, seen: str) -> Plan | None:
    """Ask until a master answers with a plan other than `seen` (the one just served: its master may still be
    shutting down), or `wait_s` passed. PlanError when a master answers without a valid plan."""
    where = f"{host}:{port}"
    deadline = time.monotonic() + wait_s
    while True:
        files = _ask_once(host, port)
        if files is not None:
            plan = read_plan(files, where)
            if plan.key != seen:
                return plan
            time.sleep(SEEN_AGAIN_S)
        if time.monotonic() >= deadline:
            return None


def confirm_master(spec: RemoteJoin) -> None:
    """In a remote Locust worker, before it connects: exit MISSED unless the master listening is still the one
    whose plan it was started for. Without this check a worker that got its plan in a scenario's last moments could
    join the next scenario's master, on the same port, with the wrong plan."""
    host, port, key = spec.master_host, spec.master_port, spec.plan_key
    files = _ask_once(host, port)
    try:
        plan = read_plan(files, f"{host}:{port}") if files is not None else None
    except PlanError as exc:
        print(f"bookbench: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(MISSED) from None
    if plan is None or plan.key != key:
        now = "no longer answers" if plan is None else f"now runs scenario {plan.key}"
        print(f"bookbench: the master at {host}:{port} {now}, not {key} that this worker was started for",
              file=sys.stderr, flush=True)
        raise SystemExit(MISSED)


def answer(request: dict[str, Any]) -> dict[str, Any]:
    try:
        plan = ask(str(request["host"]), int(request["port"]), float(request["wait_s"]), str(request["seen"]))
    except PlanError as exc:
        return {"refused": str(exc)}
    return {"none": True} if plan is None else {"plan": json.loads(plan.to_json())}


def main() -> int:
    try:
        for line in sys.stdin:
            print(json.dumps(answer(json.loads(line))), flush=True)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
