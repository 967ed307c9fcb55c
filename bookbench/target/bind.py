"""A profile bound for a run: the built-in reference profile unless one is named, its pools resolved (a SQL pool
through --dsn, a call pool through the API, once) and its tenants' credentials read; every problem a usage error
before anything starts."""

from __future__ import annotations

from typing import Any

from bookbench.config.dataset import DatasetParams
from bookbench.errors import UsageError
from bookbench.target import pools, profile
from bookbench.target.client import Target
from bookbench.target.pools import Id, Tenant
from bookbench.target.profile import Profile

# the sources only the orchestrator can resolve: the Locust processes get the tenants it found
RESOLVED_HERE = ("sql", "call")


def default_profile(protocol: str) -> str:
    """The reference service's profile for scenarios.yaml's task_mix.protocol (rest or vapi)."""
    return "reference-vapi" if protocol == "vapi" else "reference-rest"


def _api_url(prof: Profile, base_url: str | None) -> str:
    if base_url:
        return base_url.rstrip("/")
    if not prof.base_url:
        raise UsageError("pools.source call needs the API's address: base_url in the profile, or "
                               "--target-url")
    from bookbench.config.targets import pin_loopback

    # the caller gates the address it was given; the profile's own is gated here (a remote one needs the caller
    # to pass it, after --allow-remote)
    return pin_loopback(prof.base_url, "base_url", False).rstrip("/")


def resolve(prof: Profile, params: DatasetParams, dsn: str | None = None,
            base_url: str | None = None) -> tuple[list[Tenant], dict[Id, dict[str, str]]]:
    """The profile's tenants with their contacts and providers, and each tenant's credentials. A `call` pool is
    read from the API at `base_url` (default: the profile's), every tenant logged in as for the load."""
    if prof.pools.source == "call":
        assert prof.pools.tenants_list is not None
        ids = pools.parse_ids(prof.pools.tenants_list, "pools.tenants_list")
        if not ids:
            raise UsageError("pools.tenants_list: names no tenant")
        creds = pools.credentials(prof.auth.credentials, ids, params.key_secret)
        from bookbench.target.listing import tenants_by_call

        return tenants_by_call(prof, ids, creds, _api_url(prof, base_url)), creds
    tenants = pools.tenants(prof.pools, params, dsn)
    return tenants, pools.credentials(prof.auth.credentials, [t.id for t in tenants], params.key_secret)


def bind(name: str | None, protocol: str, params: DatasetParams, dsn: str | None = None,
         base_url: str | None = None) -> Target:
    prof = profile.load(name or default_profile(protocol))
    tenants, creds = resolve(prof, params, dsn, base_url)
    return Target(prof, tenants, creds)


def for_locust(name: str, target: Target) -> dict[str, Any]:
    """What the Locust processes need to rebuild the same Target: the profile, and the tenants when only this
    process could resolve them (a SQL or a call pool); never a credential (those are read again where they
    live)."""
    out: dict[str, Any] = {"profile": str(profile.resolve(name))}
    if target.profile.pools.source in RESOLVED_HERE:
        out["tenants"] = [{"id": t.id, "contacts": list(t.contacts), "providers": list(t.providers)}
                          for t in target.tenants]
    return out
