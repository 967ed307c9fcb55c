"""What a Locust process of a run is given: its RunConfig (config/<scenario>.json, named by the environment) and
the Target it talks through. Read once, at the locustfile's import."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from bookbench.artifacts import run_config
from bookbench.artifacts.run_config import RunConfig, RunDataset
from bookbench.config.scenarios import SHIPPED_SCENARIOS, load_scenarios
from bookbench.errors import ArtifactError
from bookbench.load import remote
from bookbench.target import pools as target_pools
from bookbench.target import profile as target_profile
from bookbench.target.client import Target
from bookbench.target.pools import Tenant


def load_config() -> RunConfig:
    """The RunConfig bookbench wrote for this process (BOOKBENCH_RUN_CONFIG), or, for Locust started by hand to
    explore, scenarios.yaml's task mix and dataset."""
    path = os.environ.get("BOOKBENCH_RUN_CONFIG")
    if path:
        try:
            config = run_config.read(Path(path))
        except ArtifactError as exc:  # one line naming the file and the field, not a traceback
            raise SystemExit(f"bookbench: {exc}") from None
        if config.remote is not None:
            # started by `bookbench worker` for one scenario's plan: connect only while that plan's master is the
            # one listening (the next scenario's master comes on the same port)
            remote.confirm_master(config.remote)
        return config
    if "--worker" in sys.argv or os.environ.get("LOCUST_MODE_WORKER"):
        # a worker started by hand would load this machine's scenarios.yaml, not the plan of the run it joins
        raise SystemExit("bookbench: a Locust worker runs only the plan of the run it joins; start it with "
                         "`bookbench worker --master-host HOST --master-port PORT`")
    # exploratory use: scenarios.yaml's task mix and dataset
    spec = load_scenarios(SHIPPED_SCENARIOS)
    name = os.environ.get("BOOKBENCH_SCENARIO")
    return RunConfig(task_mix=spec.task_mix, dataset=RunDataset(**spec.dataset.model_dump()),
                     scenario=spec.scenarios[name] if name else None)


def target(config: RunConfig, secret: str) -> Target:
    """The profile this run talks through (the reference service's REST or Vapi profile unless the run names
    one), with the tenants the orchestrator resolved (a pool read by SQL) or resolved here."""
    spec = config.target
    mix = config.task_mix
    prof = target_profile.load(spec.profile or ("reference-vapi" if mix.protocol == "vapi" else "reference-rest"))
    if spec.tenants:
        tenants = [Tenant(t.id, tuple(t.contacts), tuple(t.providers)) for t in spec.tenants]
    else:
        tenants = target_pools.tenants(prof.pools, config.dataset.layout())
    return Target(prof, tenants, target_pools.credentials(prof.auth.credentials, [t.id for t in tenants], secret))
