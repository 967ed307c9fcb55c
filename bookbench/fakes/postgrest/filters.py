"""A strict subset of PostgREST's query-string grammar for table reads: select, col=op.value, order, limit, offset."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from bookbench.fakes.postgrest.casts import cast
from bookbench.fakes.postgrest.errors import parse_error, undefined_column

OPERATORS = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATOR_EXPECTED = 'expecting "not" or operator (eq, gt, ...)'


@dataclass(frozen=True)
class Column:
    sql: str
    type_name: str


@dataclass(frozen=True)
class Table:
    name: str
    columns: dict[str, Column]
    # the row-level-security predicate: `{org}` is replaced by the tenant's parameter
    policy: str
    source: str


@dataclass
class Query:
    """A parsed read: SQL pieces with $n placeholders, and the values for them after the tenant's ($1)."""

    select: list[tuple[str, str]] = field(default_factory=list)  # (output key, column name)
    where: list[str] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    limit: int | None = None
    offset: int = 0
    args: list[Any] = field(default_factory=list)

    def sql(self, table: Table) -> str:
        cols = ", ".join(f"{table.columns[name].sql} AS {_quote(key)}" for key, name in self.select)
        text = f"SELECT {cols} FROM {table.source} WHERE {table.policy}"
        for clause in self.where:
            text += f" AND {clause}"
        if self.order:
            text += " ORDER BY " + ", ".join(self.order)
        if self.limit is not None:
            text += f" LIMIT {self.limit}"
        if self.offset:
            text += f" OFFSET {self.offset}"
        return text


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _unexpected(text: str, pos: int) -> str:
    return f'unexpected "{text[pos]}"' if pos < len(text) else "unexpected end of input"


def _column(table: Table, name: str) -> Column:
    if name not in table.columns:
        raise undefined_column(table.name, name)
    return table.columns[name]


def parse(table: Table, params: list[tuple[str, str]]) -> Query:
    query = Query()
    for key, value in params:
        if key == "select":
            query.select = _select(table, value)
        elif key == "order":
            query.order = _order(table, value)
        elif key in ("limit", "offset"):
            if not re.fullmatch(r"\d{1,9}", value):
                raise parse_error(f"{key} parameter", value, 1, f"{_unexpected(value, 0)} expecting digit")
            if key == "limit":
                query.limit = int(value)
            else:
                query.offset = int(value)
        else:
            query.where.append(_filter(table, key, value, query.args))
    if not query.select:
        query.select = [(name, name) for name in table.columns]
    return query


def _select(table: Table, text: str) -> list[tuple[str, str]]:
    chosen: list[tuple[str, str]] = []
    pos = 0
    for item in text.split(","):
        stripped = item.strip()
        if stripped == "*":
            chosen += [(name, name) for name in table.columns]
        else:
            alias, _, name = stripped.rpartition(":")
            for part in (alias, name) if alias else (name,):
                if not _NAME.fullmatch(part):
                    bad = pos + item.index(part) if part and part in item else pos + len(item)
                    raise parse_error("select parameter", text, bad + 1,
                                      f"{_unexpected(text, bad)} expecting field name (* or [a..z0..9_$])")
            _column(table, name)
            chosen.append((alias or name, name))
        pos += len(item) + 1
    return chosen


def _order(table: Table, text: str) -> list[str]:
    terms = []
    pos = 0
    for item in text.split(","):
        name, *mods = item.strip().split(".")
        if not _NAME.fullmatch(name):
            raise parse_error("order", text, pos + 1, f"{_unexpected(text, pos)} expecting field name")
        column = _column(table, name)
        term = column.sql
        allowed = [("asc", "desc"), ("nullsfirst", "nullslast")]
        offset = pos + len(name) + 1
        for mod in mods:
            group = next((g for g in allowed if mod in g), None)
            if group is None:
                raise parse_error("order", text, offset + 1, f'{_unexpected(text, offset)} expecting "asc", "desc", '
                                  '"nullsfirst" or "nullslast"')
            allowed = allowed[allowed.index(group) + 1:]
            term += {"asc": " ASC", "desc": " DESC", "nullsfirst": " NULLS FIRST", "nullslast": " NULLS LAST"}[mod]
            offset += len(mod) + 1
        terms.append(term)
        pos += len(item) + 1
    return terms


def _filter(table: Table, key: str, text: str, args: list[Any]) -> str:
    if not _NAME.fullmatch(key):
        raise parse_error("tree path", key, 1, f"{_unexpected(key, 0)} expecting field name")
    column = _column(table, key)
    negate = text.startswith("not.")
    rest = text[4:] if negate else text
    op, dot, value = rest.partition(".")
    if op not in OPERATORS or not dot:
        where = 4 if negate else 0
        raise parse_error("filter", text, where + 1, f"{_unexpected(text, where)} {_OPERATOR_EXPECTED}")
    args.append(cast(value, column.type_name))
    clause = f"{column.sql} {OPERATORS[op]} ${len(args) + 1}"
    return f"NOT ({clause})" if negate else clause
