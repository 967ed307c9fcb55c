"""HTTP-level hostile probes over raw sockets, where an HTTP client would not let a request be malformed: a
stalled body, duplicated JSON keys, two Authorization headers.

Each is safe on a deployment: the stalled body never completes, the duplicated-key booking names only ids proven
absent (or 0), and the two-header request is a read. Traffic goes to the address the base URL's host resolves to,
resolved once and pinned for the connection (the same host `check` already allowed).
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from bookbench.checks.base import CheckResult
from bookbench.checks.hostile_ids import unsafe_ids
from bookbench.checks.hostile_inputs import Layout
from bookbench.config.dataset import api_key

# The service's documented request timeout (BOOKBENCH_REQUEST_TIMEOUT_S, default 5 s): a stalled body must be
# answered by then; the margin absorbs a busy machine and a deployment's own slack.
DOCUMENTED_TIMEOUT_S = 5.0
STALL_MARGIN_S = 5.0
CLOSE_WAIT_S = 2.0  # after the answer to a stalled body, the connection must be closed within this
_ANSWER_S = 10.0  # for the probes that send a whole request


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no status line came (timeout or the connection dropped)
    body: bytes
    seconds: float  # from the last byte sent to the end of the answer
    closed: bool  # the server closed the connection after answering
    error: str = ""

    def json_error(self) -> bool:
        try:
            value = orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return False
        return isinstance(value, dict) and ("error" in value or "detail" in value)

    def describe(self) -> str:
        if self.status is None:
            return f"no answer after {self.seconds:.1f} s ({self.error or 'nothing received'})"
        return (f"{self.status} after {self.seconds:.1f} s, connection {'closed' if self.closed else 'left open'}, "
                f"body {self.body[:80]!r}")


@dataclass(frozen=True)
class Endpoint:
    host: str  # the Host header
    address: tuple[socket.AddressFamily, tuple[Any, ...]]  # (family, sockaddr), resolved once
    tls: bool
    prefix: str  # the base URL's path

    @classmethod
    def of(cls, base_url: str) -> Endpoint:
        parts = urlsplit(base_url)
        tls = parts.scheme.lower() == "https"
        port = parts.port or (443 if tls else 80)
        family, _, _, _, sockaddr = socket.getaddrinfo(parts.hostname or "", port, type=socket.SOCK_STREAM)[0]
        return cls(parts.netloc, (family, sockaddr), tls, parts.path.rstrip("/"))

    def connect(self, timeout: float) -> socket.socket:
        family, sockaddr = self.address
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(sockaddr)
        if self.tls:
            context = ssl.create_default_context()
            return context.wrap_socket(sock, server_hostname=self.host.rsplit(":", 1)[0])
        return sock


def _head(endpoint: Endpoint, method: str, path: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"{method} {endpoint.prefix}{path} HTTP/1.1", f"Host: {endpoint.host}",
             *(f"{k}: {v}" for k, v in headers), "", ""]
    return "\r\n".join(lines).encode("latin-1")


def _read_answer(sock: socket.socket, deadline: float) -> tuple[int | None, bytes, bool]:
    """(status, body, eof) read until the answer is complete or the deadline passes."""
    data = b""
    eof = False
    while b"\r\n\r\n" not in data or not _complete(data):
        if time.monotonic() >= deadline:
            break
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break  # what came so far is the answer (or nothing: no status)
        if not chunk:
            eof = True
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else None
    except (IndexError, ValueError):
        status = None
    return status, body, eof


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            return len(body) >= int(value.strip())
    return False  # no length (chunked, or none): read until the server closes or the deadline


def exchange(endpoint: Endpoint, request: bytes, wait_s: float, close_wait_s: float = 0.0) -> Answer:
    """Sends `request` as it is, then reads one answer for up to `wait_s`; with `close_wait_s`, also waits that
    long for the server to close the connection."""
    try:
        sock = endpoint.connect(wait_s)
    except OSError as exc:
        return Answer(None, b"", 0.0, False, f"cannot connect: {exc}")
    with sock:
        try:
            sock.sendall(request)
        except OSError as exc:
            return Answer(None, b"", 0.0, True, f"send failed: {type(exc).__name__}")
        sent = time.monotonic()
        try:
            status, body, eof = _read_answer(sock, sent + wait_s)
        except OSError as exc:
            return Answer(None, b"", time.monotonic() - sent, True, type(exc).__name__)
        seconds = time.monotonic() - sent
        if status is None:
            return Answer(None, body, seconds, eof, "connection closed" if eof else "timed out")
        if not eof and close_wait_s:
            eof = _closes(sock, close_wait_s)
        return Answer(status, body, seconds, eof)


def _closes(sock: socket.socket, within_s: float) -> bool:
    sock.settimeout(within_s)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True  # reset: closed too


# --- the probes ---------------------------------------------------------------------------------------------------

def _stalled(endpoint: Endpoint, layout: Layout, with_key: bool) -> CheckResult:
    headers = [("Content-Type", "application/json"), ("Content-Length", "500")]
    if with_key:
        headers.append(("Authorization", f"Bearer {api_key(1, layout.params.key_secret)}"))
    bound = DOCUMENTED_TIMEOUT_S + STALL_MARGIN_S
    # 15 of the promised 500 bytes, and not one id: the body can never become a booking
    answer = exchange(endpoint, _head(endpoint, "POST", "/api/v1/appointments", headers) + b'{"start": "2026',
                      bound, CLOSE_WAIT_S)
    expected = {408} if with_key else {408, 401}  # without a key, refusing before reading the body is fine too
    ok = answer.status in expected and answer.seconds <= bound and answer.closed
    name = f"http: stalled body (Content-Length 500, 15 bytes sent, {'with' if with_key else 'without'} a key)"
    want = " or ".join(str(s) for s in sorted(expected))
    return CheckResult("hostile", name, ok, f"expected {want} within {bound:g} s and the connection closed; got "
                                            f"{answer.describe()}", answer.seconds)


def _booking_ids(layout: Layout) -> tuple[int, int, int]:
    contacts, providers = layout.absent.contacts, layout.absent.providers
    first = contacts[0] if contacts else 0
    second = contacts[1] if len(contacts) > 1 else first
    return first, second, providers[0] if providers else 0


def _duplicated_keys(endpoint: Endpoint, layout: Layout, same_value: bool) -> CheckResult:
    first, second, provider = _booking_ids(layout)
    start = (dt.datetime.now(dt.UTC) + dt.timedelta(days=300)).replace(hour=10, minute=0, second=0, microsecond=0)
    body = (f'{{"contactId":{first},"contactId":{first if same_value else second},"providerId":{provider},'
            f'"start":{json.dumps(start.isoformat())},"durationMinutes":30}}').encode()
    name = f"http: duplicated JSON key in a booking ({'same' if same_value else 'different'} values)"
    unsafe = unsafe_ids("POST", "/api/v1/appointments", body, layout.absent)
    if unsafe and not layout.real_ids:
        return CheckResult("hostile", name, False, f"not sent: ids {sorted(unsafe)} were not proven absent")
    headers = [("Authorization", f"Bearer {api_key(1, layout.params.key_secret)}"),
               ("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    answer = exchange(endpoint, _head(endpoint, "POST", "/api/v1/appointments", headers) + body, _ANSWER_S)
    ok = answer.status == 400 and answer.json_error()
    return CheckResult("hostile", name, ok, f"expected 400 with a JSON error (bodies are strict); got "
                                            f"{answer.describe()}", answer.seconds)


def _two_authorizations(endpoint: Endpoint, layout: Layout, second_valid: bool) -> CheckResult:
    params = layout.params
    other = api_key(min(2, params.orgs), params.key_secret) if second_valid else "not-a-key"
    provider = params.providers_of(1)[0]  # a read: safe whatever it names
    day = (dt.date.today() + dt.timedelta(days=1)).isoformat()
    headers = [("Authorization", f"Bearer {api_key(1, params.key_secret)}"), ("Authorization", f"Bearer {other}")]
    answer = exchange(endpoint, _head(endpoint, "GET", f"/api/v1/providers/{provider}/availability?date={day}",
                                      headers), _ANSWER_S)
    ok = answer.status in (400, 401) and answer.json_error()
    second = "another tenant's key" if second_valid else "an invalid key"
    return CheckResult("hostile", f"http: two Authorization headers (a valid key, then {second})", ok,
                       f"expected 400 or 401 with a JSON error, never 2xx; got {answer.describe()}", answer.seconds)


def run(base_url: str, layout: Layout) -> list[CheckResult]:
    """Every HTTP-level probe, one result each; the two stalled bodies wait side by side."""
    try:
        endpoint = Endpoint.of(base_url)
    except (OSError, ValueError) as exc:
        return [CheckResult("hostile", "http: HTTP-level probes", False, f"cannot resolve {base_url}: {exc}")]
    with ThreadPoolExecutor(max_workers=2) as pool:
        stalls = [pool.submit(_stalled, endpoint, layout, with_key) for with_key in (True, False)]
        results = [_duplicated_keys(endpoint, layout, same) for same in (False, True)]
        results += [_two_authorizations(endpoint, layout, valid) for valid in (True, False)]
        return [s.result() for s in stalls] + results
