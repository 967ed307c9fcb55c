"""Where load may go: loopback by default, anything else only with an explicit flag; DSN masking."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit, urlunsplit


class RemoteTargetRefused(ValueError):
    """A non-loopback target was given without --allow-remote."""


def _host_of(url: str) -> str:
    parts = urlsplit(url)
    if parts.hostname:
        return parts.hostname
    # libpq-style "host=... port=..." strings
    for token in url.split():
        if token.startswith("host="):
            return token.split("=", 1)[1]
    return ""


def is_loopback(url: str) -> bool:
    host = _host_of(url)
    if host in ("localhost", ""):
        # an empty host means a Unix socket on this machine
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_loopback(url: str, what: str, allow_remote: bool) -> None:
    """Refuse to aim load or writes at another machine unless the user said so."""
    if allow_remote or is_loopback(url):
        return
    raise RemoteTargetRefused(
        f"{what} {mask_dsn(url)} is not on loopback (127.0.0.1 / ::1); "
        "pass --allow-remote to send load or test writes to another machine"
    )


def mask_dsn(dsn: str) -> str:
    """Replace the password in a URL-style DSN (or a libpq key=value string) with ***."""
    parts = urlsplit(dsn)
    if parts.scheme and parts.password is not None:
        user = parts.username or ""
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
        return urlunsplit((parts.scheme, f"{user}:***@{host}{port}", parts.path, parts.query, parts.fragment))
    if "password=" in dsn:
        return " ".join("password=***" if t.startswith("password=") else t for t in dsn.split())
    return dsn
