"""`pools.source: call`: each tenant's contacts and providers read from the answers of the profile's two list calls,
sent once per tenant with that tenant's auth (login included) through the client layer, before the load. Only
the orchestrator does this; the Locust processes get the resolved tenants (bind.for_locust)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import httpx
import orjson

from bookbench import net
from bookbench.errors import BookbenchError, UsageError
from bookbench.target.answers import decode, json_path, present
from bookbench.target.client import AsyncCaller, Compiled, Fetched, Target
from bookbench.target.pools import Id, Tenant
from bookbench.target.poolspec import ListCall
from bookbench.target.profile import Profile

KINDS = ("contacts_call", "providers_call")
# tenants asked at once: enough to hide latency, few enough not to look like a load test of its own
CONCURRENCY = 8
T = TypeVar("T")


def _snippet(body: bytes) -> str:
    text = body[:160].decode("utf-8", "replace").replace("\n", " ")
    return (text + ("..." if len(body) > 160 else "")) if text else "(no body)"


def ids_from(call: ListCall, key: str, tenant: Id, status: int, body: bytes) -> tuple[Id, ...]:
    """The ids of one answer; anything that is not a non-empty list of ids where the profile says is a usage error
    naming the key to fix and what came back."""
    came = f"tenant {tenant}: HTTP {status} {_snippet(body)}"
    if status in (401, 403):
        raise UsageError(f"{key}: the target refused tenant {tenant}'s credentials (see auth): {came}")
    if not 200 <= status < 300:
        raise UsageError(f"{key}: the list call was not answered with a success: {came}")
    items = json_path(decode(body), call.list_path)
    if not isinstance(items, list):
        where = f"at {call.list_path!r}" if call.list_path else "(the answer itself)"
        raise UsageError(f"{key}.list_path: no list {where}: {came}")
    if not items:
        raise UsageError(f"{key}.id_key: the list is empty, so no id is read at {call.id_key!r} (a filter that "
                         f"excludes every row, or a tenant with none): {came}")
    out: list[Id] = []
    for n, item in enumerate(items):
        value = item if call.id_key is None else json_path(item, call.id_key)
        # JSON true is an int to Python; an id is a number or a text, never a flag, an object or a fraction
        if not present(value):
            raise UsageError(f"{key}.id_key: no {call.id_key!r} in item {n} of {len(items)}, "
                             f"{_snippet(orjson.dumps(item))}; {came}")
        if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
            what = "item" if call.id_key is None else f"{call.id_key!r} of item"
            raise UsageError(f"{key}.id_key: {what} {n} of {len(items)} is {_snippet(orjson.dumps(value))}, not an "
                             f"id (a number or a text); {came}")
        out.append(value)
    return tuple(dict.fromkeys(out))


async def _ids(caller: AsyncCaller, call: Compiled, spec: ListCall, key: str, tenant: Tenant) -> tuple[Id, ...]:
    answer: Fetched = await caller.fetch(call, tenant, {"tenant": tenant.id}, key)
    if answer.status == 0:
        # no answer at all: the target or the way to it is at fault (exit 3), unless the login was refused
        if answer.problem.startswith("login answered"):
            raise UsageError(f"auth.login: tenant {tenant.id} (for {key}): {answer.problem}")
        raise BookbenchError(f"{key}: tenant {tenant.id}: {answer.problem}")
    if answer.status >= 500:
        raise BookbenchError(f"{key}: tenant {tenant.id}: the target failed: HTTP {answer.status} "
                             f"{_snippet(answer.body)}")
    return ids_from(spec, key, tenant.id, answer.status, answer.body)


async def resolve(target: Target, client: httpx.AsyncClient) -> list[Tenant]:
    """Every tenant of `target` with the ids its two list calls answered, in the order of tenants_list."""
    pools = target.profile.pools
    specs = {kind: getattr(pools, kind) for kind in KINDS}
    assert all(isinstance(spec, ListCall) for spec in specs.values())
    calls = {kind: target.compile(s.method, s.path, s.query, s.headers, s.body) for kind, s in specs.items()}
    caller = AsyncCaller(target, client)
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(tenant: Tenant) -> Tenant:
        async with gate:
            found = [await _ids(caller, calls[kind], specs[kind], f"pools.{kind}", tenant) for kind in KINDS]
        return Tenant(tenant.id, found[0], found[1])

    found = await asyncio.gather(*(one(t) for t in target.tenants), return_exceptions=True)
    # the first tenant of tenants_list that failed is the one named, whichever answered first
    for result in found:
        if isinstance(result, BaseException):
            raise result
    return [t for t in found if isinstance(t, Tenant)]


def _run(work: Coroutine[Any, Any, T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(work)
    # called from inside a running loop (a check suite binding its target): a loop of its own, in a thread
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, work).result()


def tenants_by_call(prof: Profile, tenant_ids: tuple[Id, ...], credentials: dict[Id, dict[str, str]],
                    base_url: str) -> list[Tenant]:
    """The tenants of a `call` pool, resolved against the API at `base_url` (already through the loopback gate)."""
    target = Target(prof, [Tenant(t, (), ()) for t in tenant_ids], credentials)

    async def work() -> list[Tenant]:
        async with net.async_client(base_url=base_url, timeout=prof.timeout_s) as client:
            return await resolve(target, client)

    return _run(work())
