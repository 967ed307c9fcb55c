"""DSNs as the user writes them: libpq key=value strings become URLs, the host the driver will really connect to
is resolved before anything judges it, and every secret in one is masked before it is printed.

asyncpg takes only URLs, and finds its host in several places besides the URL's netloc: a `?host=` parameter,
PGHOST, a service file named by `?service=` or PGSERVICE. A loopback check that reads only the netloc is
bypassed by any of them, so the hosts come from asyncpg's own parser.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, unquote, urlencode

from bookbench.errors import UsageError

_KV_TOKEN = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*('(?:[^'\\]|\\.)*'|[^\s']*)")


def parse_key_values(dsn: str) -> dict[str, str]:
    """libpq's `key=value key2='quoted value'` form, with its \\' and \\\\ escapes."""
    out: dict[str, str] = {}
    pos = 0
    while pos < len(dsn.rstrip()):
        match = _KV_TOKEN.match(dsn, pos)
        if match is None:
            raise UsageError(f"--dsn: cannot read the key=value DSN from character {pos + 1} on "
                             "(write key=value pairs, quote values with spaces in single quotes)")
        key, value = match.group(1), match.group(2)
        if value.startswith("'"):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        out[key] = value
        pos = match.end()
    return out


def is_url(dsn: str) -> bool:
    # schemes are case-insensitive (asyncpg lower-cases them too)
    return dsn[:13].lower().startswith(("postgresql://", "postgres://"))


def to_url(dsn: str) -> str:
    """The same connection as a postgresql:// URL; a URL is returned unchanged."""
    if is_url(dsn):
        scheme, rest = dsn.split("://", 1)
        return _encode_password(f"{scheme.lower()}://{rest}")
    if "://" in dsn:
        raise UsageError(f"--dsn: unsupported scheme {dsn.split('://', 1)[0]!r}; use postgresql:// or libpq "
                         "key=value pairs")
    kv = parse_key_values(dsn)
    if not kv:
        raise UsageError("--dsn is empty")
    user, password = kv.pop("user", ""), kv.pop("password", None)
    # asyncpg has no hostaddr: the address libpq would connect to is the host to use
    host = kv.pop("hostaddr", "") or kv.pop("host", "")
    kv.pop("host", None)
    port, dbname = kv.pop("port", ""), kv.pop("dbname", "")
    userinfo = quote(user, safe="") + (":" + quote(password, safe="") if password is not None else "")
    netloc = (userinfo + "@" if userinfo else "")
    query = dict(kv)
    if "/" in host:
        query["host"] = host  # a Unix socket directory cannot sit in the netloc
    else:
        netloc += ",".join(quote(h, safe="[]:") for h in host.split(",")) if host else ""
        netloc += f":{port}" if port else ""
    if port and "host" in query:
        query["port"] = port
    return f"postgresql://{netloc}/{quote(dbname, safe='')}" + ("?" + urlencode(query) if query else "")


def _encode_password(url: str) -> str:
    """user:pa#ss@host -> user:pa%23ss@host: a "#", "/", "?" or "@" left raw in a password would cut the URL."""
    scheme, rest = url.split("://", 1)
    userinfo, at, after = rest.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if not (at and colon) or not any(c in password for c in "#/?@"):
        return url
    return f"{scheme}://{user}:{quote(unquote(password), safe='')}@{after}"


def resolve_addrs(dsn: str) -> list[tuple[str, int]] | None:
    """The (host, port) pairs asyncpg will connect to, a Unix socket as its path, or None when they cannot be
    determined. Host names are returned as names: resolving them is the loopback guard's job."""
    from asyncpg import connect_utils
    from asyncpg.exceptions import ClientConfigurationError

    parse = getattr(connect_utils, "_parse_connect_dsn_and_args", None)
    if parse is None:
        return None  # another asyncpg: unknown, so never trusted as loopback
    args: dict[str, Any] = dict(
        dsn=to_url(dsn), host=None, port=None, user=None, password=None, passfile=None, database=None, ssl=None,
        service=None, servicefile=None, direct_tls=None, server_settings=None, target_session_attrs=None,
        krbsrvname=None, gsslib=None)
    try:
        addrs, _params = parse(**args)
    except TypeError:
        return None  # another signature: unknown, so never trusted as loopback
    except (ValueError, ClientConfigurationError) as exc:
        raise UsageError(f"--dsn {mask_dsn(dsn)}: {exc}") from None
    out: list[tuple[str, int]] = []
    for addr in addrs:
        if isinstance(addr, tuple):
            out.append((str(addr[0]), int(addr[1])))
        else:  # a socket path: /dir/.s.PGSQL.<port>
            tail = str(addr).rsplit(".", 1)[-1]
            out.append((str(addr), int(tail) if tail.isdigit() else 5432))
    return out


def resolve_hosts(dsn: str) -> list[str] | None:
    """The hosts asyncpg will connect to (a Unix socket as its path), or None when they cannot be determined."""
    addrs = resolve_addrs(dsn)
    return None if addrs is None else [host for host, _ in addrs]


# --- masking -----------------------------------------------------------------------------------------------------

_SECRET_KEYS = r"(?:ssl)?password"
_KV_SECRET = re.compile(rf"(\b{_SECRET_KEYS}\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_QUERY_SECRET = re.compile(rf"([?&]{_SECRET_KEYS}=)[^&]*", re.IGNORECASE)


def mask_dsn(dsn: str) -> str:
    """Every password in a DSN replaced by ***: user:pass@ in a URL (even with an unencoded #, / or @ in the
    password), ?password= and ?sslpassword=, and the same keys in a key=value string."""
    if "://" not in dsn:
        return _KV_SECRET.sub(r"\1***", dsn)
    scheme, rest = dsn.split("://", 1)
    # the userinfo ends at the last "@": libpq users rarely percent-encode a password, so an "@", "#" or "/"
    # inside it is likelier than an "@" after the host (masking too much is the safe mistake)
    userinfo, at, after = rest.rpartition("@")
    if at:
        user, colon, _password = userinfo.partition(":")
        rest = f"{user}:***@{after}" if colon else f"{userinfo}@{after}"
    return f"{scheme}://" + _QUERY_SECRET.sub(r"\1***", rest)

