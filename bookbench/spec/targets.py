"""Where load may go: loopback by default, anything else only with an explicit flag; DSN masking."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit, urlunsplit

from bookbench.errors import UsageError


class RemoteTargetRefused(UsageError):
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


_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_QUERY_PASSWORD = re.compile(r"((?:^|&)password=)[^&]*", re.IGNORECASE)


def mask_dsn(dsn: str) -> str:
    """Replace every password in a URL-style DSN (user:pass@ and ?password=) or a libpq key=value string."""
    parts = urlsplit(dsn)
    if parts.scheme and parts.netloc:
        netloc = parts.netloc
        if parts.password is not None:
            userinfo, _, hostport = netloc.rpartition("@")
            netloc = f"{userinfo.split(':', 1)[0]}:***@{hostport}"
        query = _QUERY_PASSWORD.sub(r"\1***", parts.query)
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    return _KV_PASSWORD.sub(r"\1***", dsn)
