"""A profile bound for a run: the built-in reference profile unless one is named, its pools resolved (a SQL pool
through --dsn, once) and its tenants' credentials read; every problem a usage error before anything starts."""

from __future__ import annotations

from typing import Any

from bookbench.spec.dataset import DatasetParams
from bookbench.target import pools, profile
from bookbench.target.client import Target


def default_profile(protocol: str) -> str:
    """The reference service's profile for scenarios.yaml's task_mix.protocol (rest or vapi)."""
    return "reference-vapi" if protocol == "vapi" else "reference-rest"


def bind(name: str | None, protocol: str, params: DatasetParams, dsn: str | None = None) -> Target:
    prof = profile.load(name or default_profile(protocol))
    tenants = pools.tenants(prof.pools, params, dsn)
    return Target(prof, tenants, pools.credentials(prof.auth.credentials, [t.id for t in tenants], params.key_secret))


def for_locust(name: str, target: Target) -> dict[str, Any]:
    """What the Locust processes need to rebuild the same Target: the profile, and the tenants when only this
    process could resolve them (a SQL pool); never a credential (those are read again where they live)."""
    out: dict[str, Any] = {"profile": str(profile.resolve(name))}
    if target.profile.pools.source == "sql":
        out["tenants"] = [{"id": t.id, "contacts": list(t.contacts), "providers": list(t.providers)}
                          for t in target.tenants]
    return out
