"""Who calls and about whom: a profile's tenants with their contacts and providers, and each tenant's credentials,
resolved once before the load (an empty pool or a missing secret stops the run before it starts)."""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bookbench.config.dataset import DatasetParams, api_key
from bookbench.errors import UsageError
from bookbench.target.poolspec import IdList, Pools
from bookbench.target.profile import Credentials

Id = int | str


@dataclass(frozen=True)
class Tenant:
    id: Id
    contacts: tuple[Id, ...]
    providers: tuple[Id, ...]


def parse_ids(value: IdList, where: str) -> tuple[Id, ...]:
    """A list of ids, or ranges as text ("1-100, 205"); ids stay integers when they are."""
    if isinstance(value, list):
        return tuple(value)
    out: list[Id] = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", part)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            if hi < lo or hi - lo > 10_000_000:
                raise UsageError(f"{where}: range {part!r} is empty or larger than 10,000,000 ids")
            out.extend(range(lo, hi + 1))
        else:
            out.append(int(part) if part.isdigit() else part)
    return tuple(out)


def _typed(text: str) -> Id:
    return int(text) if text.isdigit() else text


def _from_csv(path: Path) -> dict[Id, dict[str, list[Id]]]:
    found: dict[Id, dict[str, list[Id]]] = {}
    try:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or not {"tenant", "kind", "id"} <= set(reader.fieldnames):
                raise UsageError(f"pools.file {path}: needs the columns tenant, kind, id")
            for n, row in enumerate(reader, start=2):
                kind = (row["kind"] or "").strip()
                if kind not in ("contact", "provider"):
                    raise UsageError(f"pools.file {path}:{n}: kind must be contact or provider, got {kind!r}")
                slot = found.setdefault(_typed(row["tenant"].strip()), {"contact": [], "provider": []})
                slot[kind].append(_typed(row["id"].strip()))
    except OSError as exc:
        raise UsageError(f"pools.file {path}: {exc.strerror}") from None
    return found


def _from_sql(dsn: str | None, pools: Pools) -> dict[Id, dict[str, list[Id]]]:
    if not dsn:
        raise UsageError("pools.source sql needs --dsn (the queries run once against that database)")
    from bookbench.db.conn import run_with

    found: dict[Id, dict[str, list[Id]]] = {}

    async def fetch(conn: Any) -> None:
        for kind, sql in (("contact", pools.contacts_sql), ("provider", pools.providers_sql)):
            try:
                rows = await conn.fetch(sql)
            except Exception as exc:  # the user's SQL: any database error is theirs to read, in one line
                raise UsageError(f"pools.{kind}s_sql: {type(exc).__name__}: {exc}") from None
            for r in rows:
                if not {"tenant", "id"} <= set(r.keys()):
                    raise UsageError(f"pools.{kind}s_sql must return the columns tenant and id")
                slot = found.setdefault(r["tenant"], {"contact": [], "provider": []})
                slot[kind].append(r["id"])

    run_with(dsn, fetch)
    return found


def tenants(pools: Pools, params: DatasetParams | None, dsn: str | None = None) -> list[Tenant]:
    """Every tenant with at least one contact and one provider; none at all is a usage error."""
    if pools.source == "call":
        # it needs the API and each tenant's auth: bind.resolve sends the calls (listing.py)
        raise UsageError("pools.source call is resolved through the API, not here (bookbench.target.bind.resolve)")
    if pools.source == "dataset":
        if params is None:
            raise UsageError("pools.source dataset needs the dataset parameters")
        out = [Tenant(org, tuple(params.contacts_of(org)), tuple(params.providers_of(org)))
               for org in range(1, params.orgs + 1)]
    elif pools.source == "inline":
        assert pools.tenants is not None
        out = [Tenant(_typed(t), parse_ids(p.contacts, f"pools.tenants.{t}.contacts"),
                      parse_ids(p.providers, f"pools.tenants.{t}.providers")) for t, p in pools.tenants.items()]
    else:
        assert pools.source in ("csv", "sql")
        found = _from_csv(pools.file) if pools.source == "csv" and pools.file else _from_sql(dsn, pools)
        out = [Tenant(t, tuple(k["contact"]), tuple(k["provider"])) for t, k in found.items()]
    usable = [t for t in out if t.contacts and t.providers]
    if not usable:
        raise UsageError(f"pools ({pools.source}): no tenant with at least one contact and one provider")
    return usable


def credentials(creds: Credentials, tenant_ids: Sequence[Id], key_secret: str) -> dict[Id, dict[str, str]]:
    """Each tenant's secret fields ({cred:FIELD}); a tenant without them stops the run here, named."""
    if creds.source == "none":
        return {t: {} for t in tenant_ids}
    if creds.source == "dataset":
        return {t: {"key": api_key(int(t), key_secret)} for t in tenant_ids}
    if creds.source == "env":
        assert creds.env_pattern is not None
        out: dict[Id, dict[str, str]] = {}
        for t in tenant_ids:
            name = creds.env_pattern.replace("{tenant}", str(t))
            if name not in os.environ:
                raise UsageError(f"auth.credentials: environment variable {name} (tenant {t}) is not set")
            out[t] = {"token": os.environ[name]}
        return out
    assert creds.file is not None
    try:
        with creds.file.open(newline="") as fh:
            rows = {(_typed(r.pop("tenant").strip())): r for r in csv.DictReader(fh) if r.get("tenant")}
    except OSError as exc:
        raise UsageError(f"auth.credentials.file {creds.file}: {exc.strerror}") from None
    except KeyError:
        raise UsageError(f"auth.credentials.file {creds.file}: needs a tenant column") from None
    missing = [str(t) for t in tenant_ids if t not in rows]
    if missing:
        raise UsageError(f"auth.credentials.file {creds.file}: no row for tenant(s) {', '.join(missing[:5])}")
    return {t: {k: (v or "").strip() for k, v in rows[t].items()} for t in tenant_ids}
