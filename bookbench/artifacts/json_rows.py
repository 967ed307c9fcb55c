"""Python rows into an Arrow table through Arrow's own JSON reader (C++), not through `pa.array`.

pyarrow's converters for Python objects first ask whether the input is a pandas object, and asking imports pandas
(~0.3 CPU-s, and its memory) into whichever process writes the rows: `bookbench run`, which writes a scenario's
outbox rows and analyses its notifications, has no other use for it. The reader is as quick (5,000 outbox rows in
0.04 s against 0.26 s with the import) and checks each value against the schema: a value of the wrong type, an
integer beyond 64 bits, a field the schema lacks or a float that is not finite (JSON has no NaN: it would arrive
as a null) is an error naming it, never a silent null.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.json as pa_json

_READ = pa_json.ReadOptions(use_threads=False, block_size=1 << 22)


@dataclass(frozen=True)
class Rows:
    """How rows of one schema are read: the reader's options, and the fields to check before they are encoded."""

    schema: pa.Schema
    parse: pa_json.ParseOptions
    floats: tuple[str, ...]  # checked for NaN and infinity, which JSON cannot carry


def rows_of(schema: pa.Schema) -> Rows:
    floats = tuple(f.name for f in schema if pa.types.is_floating(f.type))
    return Rows(schema, pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error"), floats)


def table(rows: Sequence[dict[str, Any]], of: Rows) -> pa.Table:
    """The rows (dicts of JSON values) as a table of `of`'s schema. Raises ValueError (pa.ArrowInvalid for a
    value the schema cannot hold) naming what does not fit, TypeError for a value JSON cannot carry (an integer
    beyond 64 bits)."""
    lines = b"\n".join(_encoded(rows, of))
    if not lines:
        return of.schema.empty_table()
    try:
        return pa_json.read_json(io.BytesIO(lines), read_options=_READ, parse_options=of.parse)
    except pa.ArrowInvalid as exc:
        if "unexpected field" not in str(exc):
            raise
        # the reader does not say which field: find it
        known = set(of.schema.names)
        for row in rows:
            if row.keys() - known:
                raise pa.ArrowInvalid(f"unknown field(s) {', '.join(sorted(map(str, row.keys() - known)))}") from None
        raise


def _encoded(rows: Iterable[dict[str, Any]], of: Rows) -> Iterator[bytes]:
    for row in rows:
        for name in of.floats:
            value = row.get(name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{name} is {value}: not a finite number")
        yield orjson.dumps(row)
