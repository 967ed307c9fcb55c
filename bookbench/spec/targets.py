"""Where load may go: loopback by default, anything else only with an explicit flag."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from bookbench.errors import UsageError
from bookbench.spec.dsn import mask_dsn, resolve_hosts


class RemoteTargetRefused(UsageError):
    """A non-loopback target was given without --allow-remote."""


def hosts_of(target: str) -> list[str] | None:
    """The hosts a target really reaches: an HTTP URL's host; for a DSN, what the driver resolves (query
    parameters, PG* environment, service files included). None when that cannot be told."""
    if target.startswith(("http://", "https://")):
        return [urlsplit(target).hostname or ""]
    return resolve_hosts(target)


def _loopback_host(host: str) -> bool:
    if host.startswith("/") or host == "localhost":
        return True  # a Unix socket is on this machine
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_loopback(target: str) -> bool:
    hosts = hosts_of(target)
    return bool(hosts) and all(_loopback_host(h) for h in hosts or [])


def require_loopback(target: str, what: str, allow_remote: bool) -> None:
    """Refuse to aim load or writes at another machine unless the user said so."""
    if allow_remote or is_loopback(target):
        return
    hosts = hosts_of(target)
    where = f" (connects to {', '.join(h for h in hosts if not _loopback_host(h))})" if hosts else ""
    raise RemoteTargetRefused(
        f"{what} {mask_dsn(target)} is not on loopback (127.0.0.1 / ::1){where}; "
        "pass --allow-remote to send load or test writes to another machine"
    )

