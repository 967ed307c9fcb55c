"""Templates compiled once: a profile's paths, queries, headers and JSON bodies become small functions of the
request's values, so that a request costs a join, not a parse (the load generator renders thousands a second)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from bookbench.target.profile import Times

_PLACEHOLDER = re.compile(r"\{([a-z_]+(?::[A-Za-z0-9_.-]+)?)\}")
Values = Mapping[str, Any]
Render = Callable[[Values], Any]


class TemplateError(KeyError):
    """A value a template names was not given (a {cred:FIELD} the credentials do not hold, say)."""


def time_formatter(times: Times) -> Callable[[Any], Any]:
    """How a value is written into a request: datetimes in the profile's zone and format, dates as ISO, the rest
    as they are."""
    zone = ZoneInfo(times.timezone)
    fmt = times.format

    def write(value: Any) -> Any:
        if isinstance(value, dt.datetime):
            local = value.astimezone(zone)
            if fmt == "epoch_s":
                return int(value.timestamp())
            if fmt == "epoch_ms":
                return int(value.timestamp() * 1000)
            if fmt == "iso_z":
                return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
            if fmt == "local":
                return local.replace(tzinfo=None).isoformat()
            return local.isoformat()
        if isinstance(value, dt.date):
            return value.isoformat()
        return value

    return write


# the placeholders whose values are times or dates: only they pass through the time formatter
TIME_KEYS = frozenset({"start", "end", "now", "date"})


def _writer(key: str, write: Callable[[Any], Any]) -> Callable[[Any], Any] | None:
    return write if key in TIME_KEYS else None


def _lookup(values: Values, key: str) -> Any:
    try:
        return values[key]
    except KeyError:
        raise TemplateError(key) from None


def compile_text(text: str, write: Callable[[Any], Any], escape: Callable[[str], str] = str) -> Callable[[Values], str]:
    """A string template: literal parts and placeholders, each value written then escaped (quoted in a path)."""
    parts: list[tuple[bool, str]] = []
    pos = 0
    for m in _PLACEHOLDER.finditer(text):
        if m.start() > pos:
            parts.append((False, text[pos:m.start()]))
        parts.append((True, m.group(1)))
        pos = m.end()
    if pos < len(text):
        parts.append((False, text[pos:]))
    if all(not is_key for is_key, _ in parts):
        return lambda _values: text
    # resolved at compile time, not per request: which parts are placeholders and which need the time formatter
    frozen = tuple((part, _writer(part, write) if is_key else None, is_key) for is_key, part in parts)

    def render(values: Values) -> str:
        out = []
        for part, conv, is_key in frozen:
            if not is_key:
                out.append(part)
                continue
            value = _lookup(values, part)
            out.append(escape(str(conv(value) if conv is not None else value)))
        return "".join(out)

    return render


def compile_json(template: Any, write: Callable[[Any], Any]) -> Render:
    """A JSON body template: a string that is one placeholder alone keeps its value's type (an integer id stays a
    number, epoch times stay numbers); other strings are text templates; lists and objects recurse."""
    if isinstance(template, str):
        alone = _PLACEHOLDER.fullmatch(template)
        if alone is not None:
            key = alone.group(1)
            conv = _writer(key, write)
            if conv is None:
                return lambda values: _lookup(values, key)
            return lambda values: conv(_lookup(values, key))
        return compile_text(template, write)
    if isinstance(template, dict):
        items = [(k, compile_json(v, write)) for k, v in template.items()]
        return lambda values: {k: render(values) for k, render in items}
    if isinstance(template, list):
        renders = [compile_json(v, write) for v in template]
        return lambda values: [render(values) for render in renders]
    return lambda _values: template


def path_escape(text: str) -> str:
    """A value inside a URL path: every reserved character quoted, so an id cannot add a path segment."""
    return quote(text, safe="")
