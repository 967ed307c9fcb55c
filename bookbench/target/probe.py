"""`target check`'s probe: one request of each operation a profile defines, sent through the client layer, each
answer reported as the profile read it; every problem is a Finding naming the profile key to fix."""

from __future__ import annotations

import os
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, quote_plus, unquote

import httpx

from bookbench.errors import UsageError
from bookbench.target.answers import Outcome, decode, json_path
from bookbench.target.client import Request, Target
from bookbench.target.pools import Tenant
from bookbench.target.profile import OPERATIONS, Profile
from bookbench.target.template import TemplateError

_SCOPED = re.compile(r"\{(env|cred):([A-Za-z0-9_.-]+)\}")
BOOKING_TRIES = 8  # distinct far-ahead slots tried before a run of slot_taken answers counts as a problem
# an answer that says the request never reached the booking logic: the profile (its auth) is what to fix
_AUTH_STATUS = frozenset({401, 403})


@dataclass(frozen=True)
class Finding:
    """A problem: the profile key to look at, and what came back. `environment` when the target could not be
    reached or failed (exit 3), else the profile or its inputs are at fault (exit 2)."""

    key: str
    message: str
    environment: bool = False

    def line(self) -> str:
        return f"{self.key}: {self.message}"


@dataclass(frozen=True)
class Step:
    """One request and how it was read."""

    name: str  # the operation, or "login"
    shown: str  # method and path, secrets masked
    headers: str  # header names with masked values
    outcome: Outcome | None  # None: not sent
    note: str = ""
    ok: bool = False


@dataclass(frozen=True)
class Sent:
    outcome: Outcome
    resp: httpx.Response
    shown: str
    headers: str


@dataclass
class Probe:
    steps: list[Step] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    left_booked: int | str | None = None  # a booking the probe made and could not cancel


def _templates(prof: Profile) -> Iterator[tuple[str, Any]]:
    """Every template of the profile with its key path."""
    auth = prof.auth
    yield "auth.headers", auth.headers
    yield "auth.query", auth.query
    if auth.login is not None:
        for part in ("path", "query", "headers", "body"):
            yield f"auth.login.{part}", getattr(auth.login, part)
    for name, op in prof.operations.present().items():
        for part in ("path", "query", "headers", "body"):
            yield f"operations.{name}.{part}", getattr(op, part)


def _walk(value: Any, key: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield key, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, f"{key}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, f"{key}.{i}")


def missing_values(prof: Profile, creds: dict[str, str]) -> list[Finding]:
    """{env:NAME} not set and {cred:FIELD} the credentials do not hold, each with the key that names it: found
    before any request, so the message points at the line to fix rather than at a request that failed."""
    found: list[Finding] = []
    for key, tree in _templates(prof):
        for where, text in _walk(tree, key):
            for kind, name in _SCOPED.findall(text):
                if kind == "env" and name not in os.environ:
                    found.append(Finding(where, f"names {{env:{name}}}, which is not set in the environment"))
                elif kind == "cred" and name not in creds:
                    have = ", ".join(sorted(creds)) or "none"
                    found.append(Finding(where, f"names {{cred:{name}}}, which auth.credentials "
                                                f"({prof.auth.credentials.source}) does not give (fields: {have})"))
    return found


def secrets_of(prof: Profile, creds: dict[str, str]) -> list[str]:
    """Every value a request may carry that must never be printed: credentials, environment values the profile
    names, and (added later) the login token."""
    names = {name for key, tree in _templates(prof) for _, text in _walk(tree, key)
             for kind, name in _SCOPED.findall(text) if kind == "env"}
    values = [v for v in creds.values() if v] + [os.environ[n] for n in names if os.environ.get(n)]
    return sorted(set(values), key=len, reverse=True)


def mask(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if len(secret) < 3:
            continue  # a one- or two-character secret would mask half the path; it is no secret anyway
        for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
            text = text.replace(form, "***")
    return text


def masked_headers(req: Request, prof: Profile, op_headers: dict[str, str]) -> str:
    """The headers the profile adds, values masked (a scheme word such as Bearer kept, it helps reading)."""
    shown = []
    for name in [*prof.auth.headers, *op_headers]:
        value = req.headers.get(name, "")
        scheme, sep, _ = value.partition(" ")
        shown.append(f"{name}: {scheme} ***" if sep and scheme.isalpha() and len(scheme) <= 10 else f"{name}: ***")
    return ", ".join(dict.fromkeys(shown))


def _snippet(body: bytes) -> str:
    text = body[:160].decode("utf-8", "replace").replace("\n", " ")
    return text + ("..." if len(body) > 160 else "") if text else "(no body)"


Send = Callable[[Request], httpx.Response]


class Prober:
    """Sends the probe's requests through one httpx client (redirects never followed: a 3xx is an answer)."""

    def __init__(self, target: Target, send: Send, secrets: list[str], rng: random.Random) -> None:
        self.target = target
        self.prof = target.profile
        self.send = send
        self.secrets = list(secrets)
        self.rng = rng
        self.result = Probe()

    def _shown(self, req: Request) -> str:
        # unquoted for reading (a query of filters is unreadable percent-encoded), masked before and after
        return mask(unquote(mask(f"{req.method} {req.path}", self.secrets)), self.secrets)

    def login(self, tenant: Tenant) -> bool:
        login = self.prof.auth.login
        assert login is not None
        try:
            req = self.target.login_request(tenant)
        except TemplateError as exc:
            self.result.findings.append(Finding("auth.login", f"names {{{exc.args[0]}}}, which has no value"))
            return False
        shown = self._shown(req)
        try:
            resp = self.send(req)
        except httpx.HTTPError as exc:
            self._unreachable("login", shown, exc)
            return False
        problem = self.target.accept_login(tenant, resp.status_code, resp.content)
        if problem is not None:
            self.result.steps.append(Step("login", shown, "", Outcome("error", resp.status_code), problem))
            self.result.findings.append(Finding("auth.login", problem))
            return False
        token = json_path(decode(resp.content), login.token_path)
        self.secrets.insert(0, str(token))
        note = f"token read at {login.token_path}"
        if login.expires_in_path:
            ttl = json_path(decode(resp.content), login.expires_in_path)
            if isinstance(ttl, int | float) and ttl > 0:
                note += (f"; expires in {ttl:g} s, read at {login.expires_in_path}; renewed "
                         f"{login.refresh_before_s:g} s before")
            else:
                self.result.findings.append(Finding("auth.login.expires_in_path", f"no positive number at "
                                                    f"{login.expires_in_path} in the login answer"))
                note += f", no expiry at {login.expires_in_path}"
        else:
            note += f", kept {login.default_ttl_s:g} s (default_ttl_s)"
        self.result.steps.append(Step("login", shown, "", Outcome("ok", resp.status_code), note, ok=True))
        return True

    def _unreachable(self, name: str, shown: str, exc: httpx.HTTPError) -> None:
        self.result.steps.append(Step(name, shown, "", None, f"no answer: {type(exc).__name__}"))
        self.result.findings.append(Finding(name if name == "login" else f"operations.{name}",
                                            f"{shown.split(' ', 1)[-1]}: {type(exc).__name__}: {exc}",
                                            environment=True))

    def call(self, op: str, tenant: Tenant, values: dict[str, Any], judge: bool = True) -> Sent | None:
        """One request of `op` (None: not sent or not answered, a finding says why); with `judge` the step is
        recorded and a non-success answer becomes a finding."""
        try:
            req = self.target.request(op, tenant, values)
        except (UsageError, TemplateError) as exc:
            self.result.findings.append(Finding(f"operations.{op}", str(exc).removeprefix(f"operations.{op}: ")))
            return None
        shown = self._shown(req)
        try:
            resp = self.send(req)
        except httpx.HTTPError as exc:
            self._unreachable(op, shown, exc)
            return None
        outcome = self.target.read(op, resp.status_code, {k.lower(): v for k, v in resp.headers.items()},
                                   resp.content)
        sent = Sent(outcome, resp, shown, masked_headers(req, self.prof, self.prof.operations.present()[op].headers))
        if judge:
            self.record(op, sent)
        return sent

    def record(self, op: str, sent: Sent, note: str = "") -> None:
        ok = self.target.counts_as_success(op, sent.outcome)
        self.result.steps.append(Step(op, sent.shown, sent.headers, sent.outcome, note, ok=ok))
        if not ok:
            self.result.findings.append(self._finding(op, sent.outcome, sent.resp))

    def _finding(self, op: str, outcome: Outcome, resp: httpx.Response) -> Finding:
        came = f"HTTP {resp.status_code} {mask(_snippet(resp.content), self.secrets)}"
        if 300 <= resp.status_code < 400:
            return Finding(f"operations.{op}", f"redirect to {resp.headers.get('location', '?')} ({came}); "
                           "bookbench never follows redirects: point --target-url at the address that answers")
        if resp.status_code in _AUTH_STATUS:
            return Finding("auth", f"{op} got {came}: the target refused the credentials")
        if outcome.kind == "unclassified":
            if outcome.reason.startswith("a booked answer without a readable id"):
                index, rule = next(((i, a) for i, a in enumerate(getattr(self.prof.operations, op).answers)
                                    if a.outcome == "booked" and (a.when.status is None
                                                                  or resp.status_code in a.when.status)),
                                   (None, None))
                if index is not None and rule is not None and rule.id is not None:
                    where = f"header {rule.id.header}" if rule.id.header else f"path {rule.id.path}"
                    return Finding(f"operations.{op}.answers.{index}.id",
                                   f"the answer read as booked but holds no id at {where}: {came}")
            return Finding(f"operations.{op}.answers", f"no rule reads {came}")
        success = ", ".join(self.target.success[op])
        return Finding(f"operations.{op}", f"read as {outcome.describe()}, not one of its success outcomes "
                       f"({success}): {came}", environment=resp.status_code >= 500)


def run_probe(target: Target, send: Send, secrets: list[str], rng: random.Random | None = None) -> Probe:
    """Log in if the profile says so, then availability, upcoming, a booking far ahead on the grid and the cancel
    of exactly that booking, for the first tenant."""
    rng = rng or random.Random()
    prober = Prober(target, send, secrets, rng)
    result = prober.result
    tenant = target.tenants[0]
    if target.login_call is not None and not prober.login(tenant):
        return result
    booked: int | str | None = None
    for op in OPERATIONS:
        if not target.has(op):
            continue
        if op == "bookClinicAppointment":
            booked = _book(prober, tenant)
            if booked is None and any(f.environment for f in result.findings):
                return result
        elif op == "cancelAppointment":
            if booked is None:
                result.steps.append(Step(op, "", "", None, "not sent: no booking to cancel"))
                continue
            sent = prober.call(op, tenant, target.values(tenant, rng, appointment=booked))
            if sent is None or not target.counts_as_success(op, sent.outcome):
                result.left_booked = booked
        else:
            sent = prober.call(op, tenant, target.values(tenant, rng))
            if sent is None and any(f.environment for f in result.findings):
                return result  # unreachable: the next requests would say the same
    return result


def _book(prober: Prober, tenant: Tenant) -> int | str | None:
    """A slot in the grid's last days (the least likely to be taken); a taken slot is tried again elsewhere, so
    that there is a booking of the probe's own to cancel."""
    target = prober.target
    hi = target.profile.grid.days_ahead[1]
    lo = max(target.profile.grid.days_ahead[0], hi - 6)
    op = "bookClinicAppointment"
    for attempt in range(BOOKING_TRIES):
        values = target.values(tenant, prober.rng, start=target.slot(prober.rng, (lo, hi)))
        sent = prober.call(op, tenant, values, judge=False)
        if sent is None:
            return None
        outcome = sent.outcome
        if outcome.kind == "slot_taken" and attempt < BOOKING_TRIES - 1:
            continue
        prober.record(op, sent, f"after {attempt} taken slot(s)" if attempt else "")
        if outcome.kind == "booked" and outcome.appointment_id is not None:
            return outcome.appointment_id
        if outcome.kind == "slot_taken":
            prober.result.findings.append(Finding(f"operations.{op}", f"{BOOKING_TRIES} far-ahead slots all read "
                                                  "as slot_taken: nothing booked, so the cancel cannot be checked"))
        elif target.counts_as_success(op, outcome):
            prober.result.findings.append(Finding(f"operations.{op}.answers", f"read as {outcome.describe()}, "
                                                  "not booked: the cancel needs a booking's id"))
        return None
    return None
