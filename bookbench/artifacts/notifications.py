"""notifications/<scenario>.json: what the outbox, the breaker and the backlog did during one scenario;
notifications/<scenario>_outbox.parquet: every outbox row of the scenario; notifications/received_<provider>.jsonl:
every message the providers accepted, with its receive time.

Format 2 keeps the outbox rows out of the JSON (a 30-minute soak queues half a million): the JSON names their Parquet
file and row count (`outbox: {file, rows}`), and the file is written a batch at a time under `.tmp`, then renamed, so
that it is whole under its final name or absent. Format 1 held the rows in the JSON (`outbox: [...]`); it still
reads, its rows streamed out of the document one by one into a Parquet file of the same schema, so that no reader
ever holds them all.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO, get_args

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

from bookbench.artifacts import json_rows
from bookbench.artifacts.files import check_version, validate, write_model
from bookbench.errors import ArtifactError

NOTIFICATIONS_FORMAT_VERSION = 2
READABLE = (1, 2)
BATCH_ROWS = 20_000  # outbox rows held at once by a writer or a reader (about 12 MB as Python objects)


class OutboxRow(BaseModel):
    """One outbox row as the facts record it (the Parquet file's columns, OUTBOX_SCHEMA)."""
    model_config = ConfigDict(extra="forbid")
    appointment_id: int
    channel: str
    kind: str
    dedup_key: str
    created_at: float
    status: str
    attempts: int
    sent_at: float | None
    conflict: bool
    last_error: str | None


OUTBOX_SCHEMA = pa.schema([
    ("appointment_id", pa.int64()), ("channel", pa.string()), ("kind", pa.string()), ("dedup_key", pa.string()),
    ("created_at", pa.float64()), ("status", pa.string()), ("attempts", pa.int64()), ("sent_at", pa.float64()),
    ("conflict", pa.bool_()), ("last_error", pa.string()),
])
assert tuple(OUTBOX_SCHEMA.names) == tuple(OutboxRow.model_fields)  # one vocabulary for both formats
_ROWS = json_rows.rows_of(OUTBOX_SCHEMA)  # not pa.array: see artifacts/json_rows.py
# columns a row must fill (the others are NULL until the message is sent or fails)
_REQUIRED = [name for name, f in OutboxRow.model_fields.items() if type(None) not in get_args(f.annotation)]


class BreakerEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    t: float
    provider: str
    state: str


class OutboxFile(BaseModel):
    """Where a scenario's outbox rows are (relative to the facts' folder, or absolute for format 1's rows streamed
    into a temporary folder) and how many there are."""
    model_config = ConfigDict(extra="forbid")
    file: str
    rows: int = Field(ge=0)


class NotificationFacts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format_version: int = NOTIFICATIONS_FORMAT_VERSION
    scenario: str
    dispatchers: int
    faults: dict[str, Any]
    load_start: float
    load_end: float
    drain_timeout_s: float
    drained_at: float | None  # None: still pending when the drain timeout ran out (or drain_stopped)
    # why the drain stopped waiting before the outbox was empty (a provider or every dispatcher gone); None: it
    # drained, or the timeout ran out
    drain_stopped: str | None = None
    # the parts of the notification stack that had exited by the end of the drain, with their exit codes (a
    # dispatcher killed mid-load: its claimed rows were left to the others)
    exited: dict[str, int] = Field(default_factory=dict)
    backlog: list[tuple[float, int]]  # (epoch s, pending notifications of this scenario)
    breaker: list[BreakerEvent]
    outbox: OutboxFile


def received_file(folder: Path, provider: str) -> Path:
    """Where a fake provider (sms, calendar) appends what it accepted, in a run's notifications/ folder."""
    return folder / f"received_{provider}.jsonl"


def outbox_file(facts_path: Path) -> Path:
    """Where format 2 puts a scenario's outbox rows: `<scenario>_outbox.parquet` beside its facts."""
    return facts_path.with_name(f"{facts_path.stem}_outbox.parquet")


def outbox_path(facts_path: Path, facts: NotificationFacts) -> Path:
    """The Parquet file holding the rows of the facts read from `facts_path`."""
    return facts_path.parent / facts.outbox.file


class OutboxWriter:
    """Outbox rows into one Parquet file, a batch at a time, under `<name>.tmp` until the block ends without an
    error, then renamed: under its final name the file always holds every row (a failed write leaves nothing)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = path.with_name(path.name + ".tmp")
        self.rows = 0
        self._writer = pq.ParquetWriter(self.tmp, OUTBOX_SCHEMA, compression="zstd")

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        """One batch of rows (OutboxRow's fields); ValueError (an Arrow error among them) or TypeError names what
        does not fit."""
        if not rows:
            return
        table = json_rows.table(rows, _ROWS)
        empty = [c for c in _REQUIRED if table.column(c).null_count]
        if empty:
            raise ValueError(f"{', '.join(empty)} missing (null) in {table.column(empty[0]).null_count} row(s)")
        self._writer.write_table(table)
        self.rows += table.num_rows

    def __enter__(self) -> OutboxWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        try:
            self._writer.close()
            if kind is None:
                os.replace(self.tmp, self.path)
        finally:
            if kind is not None or self.tmp.exists():
                with contextlib.suppress(OSError):
                    self.tmp.unlink()


def write(path: Path, facts: NotificationFacts) -> None:
    """The facts' JSON (format 2); their outbox rows were written beforehand by an OutboxWriter."""
    write_model(path, facts)


def read(path: Path, scratch: Path) -> NotificationFacts:
    """The facts of `path`, either format, without ever holding their rows: format 2 names its Parquet file (checked
    present, with the rows it says); format 1's rows are streamed into `scratch` (a folder the caller removes) and
    the facts name that file instead."""
    rows_to = scratch / outbox_file(path).name
    try:
        with path.open(encoding="utf-8") as fh:
            header, rows = _document(_JsonStream(fh, str(path)), rows_to)
    except FileNotFoundError:
        raise ArtifactError(f"{path} does not exist") from None
    except UnicodeDecodeError as exc:
        raise ArtifactError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ArtifactError(f"cannot read {path}: {exc.strerror or exc}") from None
    found = header.get("format_version")
    check_version(path, header, found if found in READABLE else NOTIFICATIONS_FORMAT_VERSION)
    if (rows is not None) != (found == 1):
        raise ArtifactError(f"{path}: outbox: format {found} holds " + (
            "its rows as a list" if found == 1 else "the name of its rows' file, not the rows"))
    if rows is not None:
        header["outbox"] = {"file": str(rows_to), "rows": rows}
    facts = validate(str(path), header, NotificationFacts)
    if found == 2:
        _check_rows(path, facts)
    return facts


def _check_rows(path: Path, facts: NotificationFacts) -> None:
    """Format 2: the rows' file is there beside the facts, readable, and holds the rows the facts recorded."""
    if Path(facts.outbox.file).name != facts.outbox.file:
        raise ArtifactError(f"{path}: outbox.file: {facts.outbox.file!r} is not a file name in its folder")
    rows = outbox_path(path, facts)
    try:
        held = pq.ParquetFile(rows).metadata.num_rows
    except FileNotFoundError:
        raise ArtifactError(f"{rows} does not exist (named by {path}'s outbox.file)") from None
    except (OSError, pa.ArrowException) as exc:
        raise ArtifactError(f"{rows} is not a readable Parquet file ({exc})") from None
    if held != facts.outbox.rows:
        raise ArtifactError(f"{rows} holds {held:,} rows where {path} recorded {facts.outbox.rows:,}")


_SPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
_SCAN = _DECODER.scan_once  # type: ignore[attr-defined]  # set by JSONDecoder.__init__, untyped in typeshed
_CHUNK = 1 << 22  # characters read at a time
_LOOKAHEAD = 64  # longer than any number's text


class _JsonStream:
    """A JSON document read a chunk at a time and decoded value by value (the json module's own decoder), so that a
    large array can be walked element by element."""

    def __init__(self, fh: TextIO, where: str) -> None:
        self.fh, self.where = fh, where
        self.buf, self.pos, self.eof = "", 0, False

    def _more(self) -> bool:
        chunk = self.fh.read(_CHUNK)
        if not chunk:
            self.eof = True
            return False
        self.buf, self.pos = self.buf[self.pos:] + chunk, 0
        return True

    def peek(self) -> str:
        """The next character that is not white space ('' at the end), left unread."""
        while True:
            self.pos = _SPACE.match(self.buf, self.pos).end()  # type: ignore[union-attr]  # `*` always matches
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._more():
                return ""

    def take(self, char: str) -> None:
        found = self.peek()
        if found != char:
            what = repr(found) if found else "the end of the file"
            raise ArtifactError(f"{self.where} is not valid JSON: expected {char!r}, found {what}")
        self.pos += 1

    def value(self) -> Any:
        while True:
            self.pos = _SPACE.match(self.buf, self.pos).end()  # type: ignore[union-attr]  # `*` always matches
            try:
                # the decoder's C scanner itself (raw_decode wraps it in Python: a third of the time per row)
                value, end = _SCAN(self.buf, self.pos)
                # a number read up to the buffer's end may go on in the next chunk ("1." then "25"): a value is
                # taken once what follows it was read too (or the file ended)
                if self.eof or end + _LOOKAHEAD < len(self.buf):
                    self.pos = end
                    return value
            except (StopIteration, json.JSONDecodeError):
                if self.eof:
                    raise ArtifactError(f"{self.where} is not valid JSON: {self._why()}") from None
            self._more()

    def _why(self) -> str:
        try:
            _DECODER.raw_decode(self.buf, self.pos)
        except json.JSONDecodeError as exc:
            return f"{exc.msg} (character {exc.pos - self.pos} of the value at the end)"
        return "it ends too soon"


def _document(js: _JsonStream, rows_to: Path) -> tuple[dict[str, Any], int | None]:
    """Every top-level field but a list of outbox rows, which goes to `rows_to` (their count is returned; None: the
    document held no such list)."""
    header: dict[str, Any] = {}
    rows = None
    js.take("{")
    if js.peek() == "}":
        return header, rows
    while True:
        key = js.value()
        js.take(":")
        if key == "outbox" and js.peek() == "[":
            rows = _stream_rows(js, rows_to)
        else:
            header[str(key)] = js.value()
        if js.peek() != ",":
            break
        js.pos += 1
    js.take("}")
    return header, rows


_FIELDS = frozenset(OutboxRow.model_fields)


def _stream_rows(js: _JsonStream, rows_to: Path) -> int:
    """Format 1's `outbox` list into a Parquet file, a batch at a time; each row checked against OutboxRow's fields."""
    js.take("[")
    with OutboxWriter(rows_to) as writer:
        batch: list[dict[str, Any]] = []
        more = js.peek() != "]"
        while more:
            row = js.value()
            if type(row) is not dict or row.keys() != _FIELDS:
                raise ArtifactError(f"{js.where}: outbox.{writer.rows + len(batch)}: " + _misfit(row))
            batch.append(row)
            if len(batch) >= BATCH_ROWS:
                _write(writer, batch, js.where)
                batch = []
            more = js.peek() == ","
            js.pos += more
        _write(writer, batch, js.where)
    js.take("]")
    return writer.rows


def _write(writer: OutboxWriter, batch: list[dict[str, Any]], where: str) -> None:
    try:
        writer.write(batch)
    except (ValueError, TypeError, pa.ArrowException) as exc:
        raise ArtifactError(f"{where}: outbox rows {writer.rows}-{writer.rows + len(batch) - 1}: {exc}") from None


def _misfit(row: Any) -> str:
    if not isinstance(row, dict):
        return f"expected an object, found {type(row).__name__}"
    missing, unknown = sorted(_FIELDS - row.keys()), sorted(map(str, row.keys() - _FIELDS))
    said = ([f"field(s) missing: {', '.join(missing)}"] if missing else []) + (
        [f"unknown field(s): {', '.join(unknown)}"] if unknown else [])
    return "; ".join(said)


def read_received(path: Path) -> list[dict[str, Any]]:
    """The providers' records; a line cut short by a killed provider is skipped (tests and checks: the analysis
    queries the files instead)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out
