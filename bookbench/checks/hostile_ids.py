"""Which values in a hostile request could name a row, however a lax server reads them; and the ids in a write.

On someone's deployment the hostile suite may only write with ids proven absent there. Every valid bigint
(1 .. 2^63-1) can be a row id: a deployment may hold ids near 2^63 (an earlier version assumed it could not, used
ids there as "impossible", and cancelled real appointments). So "plausible" covers the whole range, and every way a
lax server might turn a value into an integer: 1, "1", 1.0, 1.5 (truncated or rounded), " 01", "0x1", "1e2",
"1; DROP ...", true, [1], and 64- and 32-bit wrap-around (2^64 + 1, 2^32 + 1).
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote

MAX_ID = 2**63 - 1
_INT_PREFIX = re.compile(r"\s*([+-]?)(\d+)")
# names a lax server could map onto an id parameter (the service also accepts snake_case: populate_by_name)
_ID_KEYS = frozenset({"contactid", "providerid", "appointmentid"})
_DIGITS = 4000  # below Python's 4,300-digit limit for int(str)


def _wrapped(value: int) -> set[int]:
    """The value and what 64- and 32-bit signed integers would make of it."""
    out = {value}
    for bits in (64, 32):
        low = value % 2**bits
        out.add(low - 2**bits if low >= 2 ** (bits - 1) else low)
    return out


def _from_digits(sign: str, digits: str) -> set[int]:
    if len(digits) <= _DIGITS:
        return _wrapped(-int(digits) if sign == "-" else int(digits))
    low = 0  # past the exact range: only the wrapped readings can be row ids
    for i in range(0, len(digits), 1000):
        chunk = digits[i:i + 1000]
        low = (low * 10 ** len(chunk) + int(chunk)) % 2**64
    # 2^64 and 2^32 divide out: the wrapped readings of the whole number are those of its low 64 bits
    return _wrapped(-low if sign == "-" else low)


def _from_float(value: float) -> set[int]:
    if not math.isfinite(value):
        return set()
    out: set[int] = set()
    for whole in (math.trunc(value), math.floor(value), math.ceil(value), round(value)):
        out |= _wrapped(whole)
    return out


def _from_text(text: str) -> set[int]:
    out: set[int] = set()
    if match := _INT_PREFIX.match(text):  # parseInt("12abc") is 12
        out |= _from_digits(match.group(1), match.group(2))
    stripped = text.strip()
    for parse in (lambda s: int(s, 0), int):  # 0x10, 0o7, 1_000, Unicode digits
        with contextlib.suppress(ValueError):
            if len(stripped) <= _DIGITS:
                out |= _wrapped(parse(stripped))
    with contextlib.suppress(ValueError, OverflowError):
        out |= _from_float(float(stripped))  # 1e2, .5, 1.
    return out


class _Members(list[tuple[str, object]]):
    """A JSON object's members in order, duplicated keys kept (a lax server may take the first, or the last)."""


def readings(value: object, depth: int = 0) -> set[int]:
    """Every integer a lax server could read from a decoded JSON value (containers: any member)."""
    if depth > 40:
        return set()
    if isinstance(value, _Members):
        return set().union(*(readings(v, depth + 1) for _, v in value))
    if isinstance(value, bool):
        return {int(value)}
    if isinstance(value, int):
        return _wrapped(value)
    if isinstance(value, float):
        return _from_float(value)
    if isinstance(value, str):
        return _from_text(value)
    if isinstance(value, list):
        return set().union(*(readings(v, depth + 1) for v in value))
    if isinstance(value, dict):
        return set().union(*(readings(v, depth + 1) for v in value.values()))
    return set()


def _decoded(text: str) -> object:
    try:
        return json.loads(text, object_pairs_hook=_Members)
    except (ValueError, RecursionError):
        return text


def text_readings(text: str) -> set[int]:
    """The integers a JSON fragment or a path segment could be read as."""
    return readings(_decoded(text))


def row_ids(values: set[int]) -> set[int]:
    return {v for v in values if 0 < v <= MAX_ID}


def plausible_id(text: str) -> bool:
    """Whether a JSON fragment or path segment could name an existing row however a lax server reads it."""
    return bool(row_ids(text_readings(text)))


@dataclass(frozen=True)
class Absent:
    """Ids a read on the deployment proved absent for every key the probes send (see hostile_deployment)."""

    contacts: tuple[int, ...] = ()
    providers: tuple[int, ...] = ()
    appointments: tuple[int, ...] = ()

    def of(self, kind: str) -> tuple[int, ...]:
        return {"contact": self.contacts, "provider": self.providers, "appointment": self.appointments}[kind]

    def all(self) -> frozenset[int]:
        return frozenset(self.contacts + self.providers + self.appointments)


NONE_PROVEN = Absent()


def _pairs(value: object, depth: int = 0) -> Iterator[tuple[str, object]]:
    """(key, value) for every object member, nested, including objects inside JSON strings (Vapi arguments)."""
    if depth > 40:
        return
    if isinstance(value, _Members):
        for key, item in value:
            yield key, item
            yield from _pairs(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            yield from _pairs(item, depth + 1)
    elif isinstance(value, str) and value.lstrip()[:1] in ("{", "["):
        yield from _pairs(_decoded(value), depth + 1)


def _body_values(body: bytes) -> list[object]:
    """Every value an id key holds in the body, as lenient readers would decode it: invalid UTF-8 replaced, and
    for a document no parser accepts (truncated, garbage), what a streaming parser saw before it gave up."""
    text = body.decode("utf-8", "replace")
    found: list[object] = []
    for key, value in _pairs(_decoded(text)):
        if key.replace("_", "").lower() in _ID_KEYS:
            found.append(value)
    # a plain scan catches what the parse could not reach (e.g. '{"contactId": 5' cut short)
    for match in re.finditer(r'"(\w+)"\s*:\s*("(?:[^"\\]|\\.)*"|[^,}\]\s]+)', text):
        if match.group(1).replace("_", "").lower() in _ID_KEYS:
            found.append(_decoded(match.group(2)))
    return found


def write_ids(method: str, path: str, body: bytes | None) -> set[int]:
    """Every row id a request that may write could name: any request but a GET. (A Vapi read tool's envelope
    counts too: a lax server might dispatch on the function name inside it rather than on the path.)"""
    if method.upper() in ("GET", "HEAD", "OPTIONS"):
        return set()
    route, _, query = path.partition("?")
    ids: set[int] = set()
    if not route.startswith("/api/vapi/"):  # there the path holds a tool's name, not an id
        # /api/v1/appointments/{id}/cancel: the id, percent-decoded; and any other segment a server could read
        for segment in route.split("/"):
            ids |= text_readings(unquote(segment, errors="surrogateescape"))
    for _key, text in parse_qsl(query, keep_blank_values=True, errors="surrogateescape"):
        ids |= text_readings(text)
    for value in _body_values(body or b""):
        ids |= readings(value)
    return row_ids(ids)


def unsafe_ids(method: str, path: str, body: bytes | None, absent: Absent) -> set[int]:
    """The ids in a write that were not proven absent: on a deployment, a request with any is never sent."""
    return write_ids(method, path, body) - absent.all()
