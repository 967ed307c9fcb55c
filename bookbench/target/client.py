"""The one API client layer: a profile compiled into requests and answers for the four operations of a voice-agent
call, with per-tenant auth (static headers or a login whose token is refreshed before it expires). The Locust
caller, the warm-up and the checks build every request and read every answer here; an async executor for httpx
is included (Locust drives the same Target through its own client)."""

from __future__ import annotations

import datetime as dt
import os
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import httpx
import orjson

from bookbench.errors import UsageError
from bookbench.target.answers import Outcome, classify, json_path, present
from bookbench.target.pools import Id, Tenant
from bookbench.target.profile import Login, Profile
from bookbench.target.template import (
    TemplateError,
    Values,
    compile_json,
    compile_text,
    path_escape,
    time_formatter,
)


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # with its query string
    headers: dict[str, str]
    body: bytes | None


class Compiled:
    """One request template (an operation, the login, a pool's list call) as render functions."""

    def __init__(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: Any,
                 write: Callable[[Any], Any]) -> None:
        self.method = method
        self.path = compile_text(path, write, path_escape)
        self.query = [(k, compile_text(v, write)) for k, v in query.items()]
        self.headers = [(k, compile_text(v, write)) for k, v in headers.items()]
        self.body = None if body is None else compile_json(body, write)

    def render(self, values: Values, extra_headers: dict[str, str], extra_query: list[tuple[str, str]]) -> Request:
        path = self.path(values)
        query = [(k, render(values)) for k, render in self.query] + extra_query
        if query:
            path += ("&" if "?" in path else "?") + urlencode(query)
        headers = {"Accept": "application/json", **extra_headers,
                   **{k: render(values) for k, render in self.headers}}
        body = None
        if self.body is not None:
            body = orjson.dumps(self.body(values))
            headers.setdefault("Content-Type", "application/json")
        return Request(self.method, path, headers, body)


class Target:
    """A profile bound to its tenants and their credentials."""

    def __init__(self, profile: Profile, tenants: list[Tenant], credentials: dict[Id, dict[str, str]]) -> None:
        self.profile = profile
        self.tenants = tenants
        write = self._write = time_formatter(profile.times)
        self.ops = {name: Compiled(op.method, op.path, op.query, op.headers, op.body, write)
                    for name, op in profile.operations.present().items()}
        self._answers = {name: op.answers for name, op in profile.operations.present().items()}
        # whether any rule reads an id from a response header: if none does, callers need not copy the headers
        self.reads_headers = any(a.id is not None and a.id.header for rules in self._answers.values() for a in rules)
        self.success = {name: frozenset(op.success) for name, op in profile.operations.present().items()}
        auth = profile.auth
        self._auth_headers = [(k, compile_text(v, write)) for k, v in auth.headers.items()]
        self._auth_query = [(k, compile_text(v, write)) for k, v in auth.query.items()]
        self.login_call = (None if auth.login is None else
                           Compiled(auth.login.method, auth.login.path, auth.login.query, auth.login.headers,
                                     auth.login.body, write))
        env = _env_names(profile)
        self._fixed = {t.id: _fixed_values(t.id, credentials.get(t.id, {}), env) for t in tenants}
        grid = profile.grid
        self._opens, self._closes = dt.time.fromisoformat(grid.opens), dt.time.fromisoformat(grid.closes)
        self._days: dict[dt.date, tuple[dt.datetime, int]] = {}  # day -> (opening time in UTC, slots that day)
        self._tokens: dict[Id, tuple[str, float]] = {}  # tenant -> (token, monotonic time to refresh at)
        self.zone = ZoneInfo(profile.grid.timezone)

    # -- requests --------------------------------------------------------------------------------------------
    def has(self, op: str) -> bool:
        return op in self.ops

    def needs_login(self, tenant: Tenant) -> bool:
        if self.login_call is None:
            return False
        held = self._tokens.get(tenant.id)
        return held is None or time.monotonic() >= held[1]

    def login_request(self, tenant: Tenant) -> Request:
        assert self.login_call is not None
        try:
            return self.login_call.render(self._fixed[tenant.id], {}, [])
        except TemplateError as exc:
            raise UsageError(f"auth.login: the template names {{{exc.args[0]}}}, which has no value (an unset "
                             "environment variable, or a credential field the credentials do not hold)") from None

    def accept_login(self, tenant: Tenant, status: int, body: bytes) -> str | None:
        """Store the token of a login answer; None when it worked, else what came back (one line)."""
        login = self.profile.auth.login
        assert login is not None
        doc = _decode(body)
        token = json_path(doc, login.token_path) if 200 <= status < 300 else None
        if not present(token) or not isinstance(token, str):
            return f"login answered HTTP {status} without a token at {login.token_path}: {body[:120]!r}"
        self._tokens[tenant.id] = (token, time.monotonic() + _ttl(login, doc) - login.refresh_before_s)
        return None

    def request(self, op: str, tenant: Tenant, values: dict[str, Any]) -> Request:
        return self.render(self.ops[op], tenant, values, f"operations.{op}")

    def compile(self, method: str, path: str, query: dict[str, str], headers: dict[str, str],
                body: Any) -> Compiled:
        """A request template of the profile's that is not one of the four operations (a pool's list call)."""
        return Compiled(method, path, query, headers, body, self._write)

    def render(self, call: Compiled, tenant: Tenant, values: dict[str, Any], key: str) -> Request:
        """`call` for `tenant`, with the tenant's auth headers and query; a template naming a value it has not
        got is a usage error naming `key`."""
        fixed = self._fixed[tenant.id]
        merged: dict[str, Any] = {**fixed, **values}
        held = self._tokens.get(tenant.id)
        if held is not None:
            merged["token"] = held[0]
        try:
            headers = {k: render(merged) for k, render in self._auth_headers}
            query = [(k, render(merged)) for k, render in self._auth_query]
            return call.render(merged, headers, query)
        except TemplateError as exc:
            raise UsageError(f"{key}: the template names {{{exc.args[0]}}}, which this request has no "
                             "value for") from None

    def read(self, op: str, status: int, headers: dict[str, str], body: bytes) -> Outcome:
        return classify(self._answers[op], status, headers, body)

    def counts_as_success(self, op: str, outcome: Outcome) -> bool:
        return outcome.kind in self.success[op]

    # -- the target's database ------------------------------------------------------------------------------
    def audit_columns(self) -> dict[str, str] | None:
        """Where the target keeps appointments, for the audit and the reconciliation; None: not measurable."""
        audit = self.profile.audit
        return None if audit is None else audit.model_dump(exclude={"answer_id_regex"})

    def row_id(self, answer_id: str) -> int | None:
        """The row id behind an id the API answered ("APT-000123" -> 123 with answer_id_regex); None when it
        cannot be told."""
        regex = self.profile.audit.answer_id_regex if self.profile.audit else None
        if regex is not None:
            found = re.search(regex, answer_id)
            answer_id = found.group(1) if found else ""
        return int(answer_id) if answer_id.isdigit() else None

    # -- values --------------------------------------------------------------------------------------------
    def slot(self, rng: random.Random, days: tuple[int, int] | None = None,
             now: dt.datetime | None = None) -> dt.datetime:
        """A random slot start of the booking grid (in UTC), `days` ahead (default: the grid's days_ahead)."""
        lo, hi = days or self.profile.grid.days_ahead
        today = (now or dt.datetime.now(dt.UTC)).astimezone(self.zone).date()
        day = today + dt.timedelta(days=rng.randint(lo, hi))
        found = self._days.get(day)
        if found is None:
            # per day, not per call: the load generator asks thousands of times a second (a DST day differs)
            opens = dt.datetime.combine(day, self._opens, tzinfo=self.zone)
            closes = dt.datetime.combine(day, self._closes, tzinfo=self.zone)
            slots = max(1, int((closes - opens).total_seconds() // (self.profile.grid.slot_minutes * 60)))
            found = self._days[day] = (opens.astimezone(dt.UTC), slots)
        return found[0] + dt.timedelta(minutes=self.profile.grid.slot_minutes * rng.randrange(found[1]))

    def values(self, tenant: Tenant, rng: random.Random, start: dt.datetime | None = None,
               contact: Id | None = None, provider: Id | None = None, appointment: Id | None = None) -> dict[str, Any]:
        """Every placeholder's value for one call of `tenant`: a random contact and provider of its pools and a
        random slot, unless given."""
        now = dt.datetime.now(dt.UTC)
        start = start or self.slot(rng, now=now)
        minutes = self.profile.grid.slot_minutes
        return {"tenant": tenant.id, "contact": contact if contact is not None else rng.choice(tenant.contacts),
                "provider": provider if provider is not None else rng.choice(tenant.providers),
                "start": start, "end": start + dt.timedelta(minutes=minutes), "duration": minutes,
                "date": start.astimezone(self.zone).date(), "now": now,
                "appointment": appointment if appointment is not None else "", "call_id": f"c{rng.getrandbits(32)}"}


_ENV = re.compile(r"\{env:([A-Za-z0-9_.-]+)\}")


def _env_names(profile: Profile) -> set[str]:
    """The environment variables the profile's templates name ({env:NAME})."""
    return set(_ENV.findall(profile.model_dump_json()))


def _fixed_values(tenant: Id, creds: dict[str, str], env: set[str]) -> dict[str, Any]:
    fixed: dict[str, Any] = {"tenant": tenant, **{f"cred:{k}": v for k, v in creds.items()}}
    # {env:NAME} is read once per tenant (a key kept in the environment never sits in a file); an unset one is
    # left out, and the request that names it says so
    for name in env:
        if name in os.environ:
            fixed[f"env:{name}"] = os.environ[name]
    return fixed


def _decode(body: bytes) -> Any:
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None


def _ttl(login: Login, doc: Any) -> float:
    if login.expires_in_path:
        value = json_path(doc, login.expires_in_path)
        if isinstance(value, int | float) and value > 0:
            return float(value)
    return login.default_ttl_s


@dataclass(frozen=True)
class Fetched:
    """A raw answer: its status and body, or status 0 and why there was none (a failed login, no connection)."""

    status: int
    body: bytes
    problem: str = ""


class AsyncCaller:
    """The layer over httpx: one call of one operation for one tenant, logging in first when the tenant's token
    is missing or about to expire. Transport failures are `error` outcomes, never exceptions."""

    def __init__(self, target: Target, client: httpx.AsyncClient) -> None:
        self.target = target
        self.client = client

    async def _send(self, req: Request) -> httpx.Response:
        return await self.client.request(req.method, req.path, headers=req.headers, content=req.body)

    async def login(self, tenant: Tenant) -> str | None:
        try:
            resp = await self._send(self.target.login_request(tenant))
        except httpx.HTTPError as exc:
            return f"login: {type(exc).__name__}: {exc}"
        return self.target.accept_login(tenant, resp.status_code, resp.content)

    async def fetch(self, call: Compiled, tenant: Tenant, values: dict[str, Any], key: str) -> Fetched:
        """A raw request template (not an operation: its answer is read by the caller), logging in first like
        `call`; status 0 with `problem` when there was no answer to read."""
        if self.target.needs_login(tenant):
            problem = await self.login(tenant)
            if problem is not None:
                return Fetched(0, b"", problem)
        try:
            resp = await self._send(self.target.render(call, tenant, values, key))
        except httpx.HTTPError as exc:
            return Fetched(0, b"", f"{type(exc).__name__}: {exc}")
        return Fetched(resp.status_code, resp.content)

    async def call(self, op: str, tenant: Tenant, values: dict[str, Any]) -> Outcome:
        if self.target.needs_login(tenant):
            problem = await self.login(tenant)
            if problem is not None:
                return Outcome("error", 0, reason=problem)
        req = self.target.request(op, tenant, values)
        try:
            resp = await self._send(req)
        except httpx.HTTPError as exc:
            return Outcome("error", 0, reason=f"{type(exc).__name__}: {exc}")
        return self.target.read(op, resp.status_code, {k.lower(): v for k, v in resp.headers.items()}, resp.content)
