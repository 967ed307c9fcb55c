"""PostgreSQL's input casts for JSON arguments and filter values, with its error codes and wording (22P02, ...)."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from bookbench.fakes.postgrest.errors import sql_error

BIGINT_MAX = 2**63 - 1
INT_MAX = 2**31 - 1
_INTEGER = re.compile(r"\s*[+-]?\d+\s*")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _text(value: Any) -> str:
    # what json_to_record hands the cast: a string's contents, anything else as its JSON text
    return value if isinstance(value, str) else json.dumps(value)


def to_integer(value: Any, type_name: str = "bigint") -> int | None:
    if value is None:
        return None
    text = _text(value)
    if not _INTEGER.fullmatch(text):
        raise sql_error("22P02", f'invalid input syntax for type {type_name}: "{text}"')
    number = int(text)
    limit = BIGINT_MAX if type_name == "bigint" else INT_MAX
    if not -limit - 1 <= number <= limit:
        raise sql_error("22003", f'value "{text.strip()}" is out of range for type {type_name}')
    return number


def to_timestamptz(value: Any) -> dt.datetime | None:
    """ISO 8601 with `T` or a space; a time without an offset is taken in the session's zone, UTC here."""
    if value is None:
        return None
    text = _text(value)
    try:
        parsed = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
        # in UTC at once: 0001-01-01T00:00+01:00 has no UTC value, and comparing it later would overflow
        return (parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
    except ValueError:
        raise sql_error("22007", f'invalid input syntax for type timestamp with time zone: "{text}"') from None
    except OverflowError:
        raise sql_error("22008", f'timestamp out of range: "{text}"') from None


def to_date(value: Any) -> dt.date | None:
    if value is None:
        return None
    text = _text(value)
    try:
        if not _DATE.fullmatch(text.strip()):
            raise ValueError(text)
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise sql_error("22007", f'invalid input syntax for type date: "{text}"') from None


def to_text(value: Any) -> str | None:
    return None if value is None else _text(value)


CASTS: dict[str, Any] = {"bigint": to_integer, "integer": lambda v: to_integer(v, "integer"),
                         "timestamp with time zone": to_timestamptz, "date": to_date, "text": to_text}


def cast(value: Any, type_name: str) -> Any:
    return CASTS[type_name](value)


def iso(value: dt.datetime) -> str:
    """A timestamptz as PostgreSQL's to_json writes it in a UTC session: 2026-12-01T09:00:00+00:00."""
    return value.astimezone(dt.UTC).isoformat()

