"""Where load and writes may go: loopback by default, anything else only with an explicit flag.

A host is judged by the addresses it resolves to, never by its name (a hosts file can map `localhost` anywhere),
and the target handed back names those addresses, so the connection cannot resolve the name again elsewhere.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from bookbench.config.dsn import mask_dsn, resolve_addrs, to_url
from bookbench.errors import UsageError

_URL_SCHEMES = ("http", "https")
_DSN_SCHEMES = ("postgresql", "postgres")
# where asyncpg reads a host or port besides the netloc: a pinned DSN names them in the netloc alone
_HOST_PARAMS = ("host", "hostaddr", "port")


class RemoteTargetRefused(UsageError):
    """A non-loopback target was given without --allow-remote."""


def scheme_of(target: str) -> str | None:
    """The URL scheme in lower case (schemes are case-insensitive: HTTP:// is http), None for a key=value DSN."""
    head, sep, _ = target.partition("://")
    return head.lower() if sep and head.replace("+", "").replace("-", "").replace(".", "").isalnum() else None


def is_http_url(target: str) -> bool:
    return scheme_of(target) in _URL_SCHEMES


def _check_kind(target: str, what: str) -> None:
    """A URL option given a DSN or the other way round, or an unknown scheme: say so in the option's own terms."""
    scheme = scheme_of(target)
    wants_dsn = what.lower().endswith("dsn")
    wants_url = what.lower().endswith("url")
    if scheme in _URL_SCHEMES and not wants_dsn:
        return
    if (scheme is None or scheme in _DSN_SCHEMES) and not wants_url:
        return
    expected = "a postgresql:// URL or libpq key=value pairs" if wants_dsn else \
        "an http:// or https:// URL" if wants_url else "an http(s):// URL or a PostgreSQL DSN"
    found = f"scheme {scheme!r}" if scheme else "no URL scheme"
    raise UsageError(f"{what} {mask_dsn(target)}: {found}; expected {expected}")


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def _resolve(host: str, port: int) -> list[str]:
    """Every address a connection to `host` may use, in the order a client tries them; an IP literal is itself;
    none for a name that does not resolve (nothing proves it is on loopback)."""
    if _ip(host) is not None:
        return [host.strip("[]")]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    seen: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in seen:
            seen.append(address)
    return seen


def _loopback_address(address: str) -> bool:
    ip = _ip(address)
    return ip is not None and ip.is_loopback


def _refuse(target: str, what: str, far: list[str]) -> RemoteTargetRefused:
    where = f" (connects to {', '.join(far)})" if far else ""
    return RemoteTargetRefused(
        f"{what} {mask_dsn(target)} is not on loopback (127.0.0.1 / ::1){where}; "
        "pass --allow-remote to send load or test writes to another machine")


def _pin_url(url: str, what: str) -> str:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:
        raise UsageError(f"{what} {mask_dsn(url)}: {exc}") from None
    if not host:
        raise UsageError(f"{what} {mask_dsn(url)} names no host")
    addresses = _resolve(host, port)
    far = [a if a == host else f"{host} resolves to {a}" for a in addresses if not _loopback_address(a)]
    if far or not addresses:
        raise _refuse(url, what, far or [f"{host}, which does not resolve"])
    pinned = addresses[0]  # the one the client would try first
    netloc = f"[{pinned}]" if ":" in pinned else pinned
    if parts.port is not None:
        netloc += f":{parts.port}"
    if parts.username is not None:
        # re-encoded, so that no client reads a host out of a userinfo that others read as userinfo
        userinfo = quote(unquote(parts.username), safe="")
        if parts.password is not None:
            userinfo += ":" + quote(unquote(parts.password), safe="")
        netloc = f"{userinfo}@{netloc}"
    return urlunsplit((scheme, netloc, parts.path, parts.query, parts.fragment))


def _pin_dsn(dsn: str, what: str) -> str:
    url = to_url(dsn)
    addrs = resolve_addrs(url)
    if not addrs:
        raise _refuse(url, what, [])
    entries: list[str] = []
    far: list[str] = []
    renamed = False
    for host, port in addrs:
        if host.startswith("/"):  # a Unix socket is on this machine
            entries.append(f"{quote(host, safe='')}:{port}")
            continue
        addresses = _resolve(host, port)
        if not addresses:
            far.append(f"{host}, which does not resolve")
        for address in addresses:
            renamed = renamed or address != host
            if not _loopback_address(address):
                far.append(address if address == host else f"{host} resolves to {address}")
            entries.append(f"[{address}]:{port}" if ":" in address else f"{address}:{port}")
    if far:
        raise _refuse(url, what, far)
    if not renamed:
        return url  # only addresses already: nothing can resolve differently
    parts = urlsplit(url)
    userinfo, at, _ = parts.netloc.rpartition("@")
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in _HOST_PARAMS])
    return urlunsplit((parts.scheme, f"{userinfo}{at}{','.join(entries)}", parts.path, query, parts.fragment))


def pin_loopback(target: str, what: str, allow_remote: bool) -> str:
    """The one loopback gate: refuse `target` (an http(s) URL or a PostgreSQL DSN, named `what` in messages) when
    an address it would connect to is not loopback, unless `allow_remote`. Returns the target to connect with: a
    host name replaced by the loopback address it resolved to (URL: the first, bracketed for IPv6; DSN: every one,
    in the netloc), so nothing resolves the name again; a DSN as a URL, a URL's scheme in lower case."""
    _check_kind(target, what)
    if is_http_url(target):
        if allow_remote:
            parts = urlsplit(target)
            return urlunsplit((parts.scheme.lower(), *parts[1:]))
        return _pin_url(target, what)
    if allow_remote:
        return to_url(target)
    return _pin_dsn(target, what)


def hosts_of(target: str) -> list[str] | None:
    """The hosts a target names: an HTTP URL's host; for a DSN, what the driver resolves (query parameters, PG*
    environment, service files included). None when that cannot be told."""
    if is_http_url(target):
        return [urlsplit(target).hostname or ""]
    addrs = resolve_addrs(target)
    return None if addrs is None else [h for h, _ in addrs]


def is_loopback(target: str) -> bool:
    """Whether every address `target` would connect to is loopback (names resolved)."""
    try:
        pin_loopback(target, "target", allow_remote=False)
    except RemoteTargetRefused:
        return False
    return True


def require_loopback(target: str, what: str, allow_remote: bool) -> None:
    """Refuse to aim load or writes at another machine unless the user said so (pin_loopback without the pin)."""
    pin_loopback(target, what, allow_remote)
