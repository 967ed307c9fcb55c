"""The raw-sample file format (versioned) and a writer cheap enough to sit in Locust's request hook.

One row per request, unrounded. The file is gzip-compressed CSV written as a series of gzip members, one per
flush: every completed flush stays readable even if the process is killed mid-run (readers that handle
multi-member gzip, such as Python's gzip module and pandas, read them as one file).
"""

from __future__ import annotations

import csv
import errno
import gzip
import hashlib
import io
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# 2: `intended`, the open model's intended send time (empty in the closed model); readers accept 1 (no column)
SAMPLES_FORMAT_VERSION = 2
COLUMNS = ("ts", "latency_ms", "name", "method", "status", "ok", "error", "bytes", "users", "worker", "intended")

Sample = tuple[float, float, str, str, int, int, str, int, int, str, float | None]


class SampleWriter:
    """Buffers rows in memory and appends them to the file as one gzip member per flush."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rows: list[Sample] = []
        self.written = 0
        if not self.path.exists():
            self._append_member([COLUMNS])

    def add(self, row: Sample) -> None:
        self.rows.append(row)

    def extend(self, rows: list[Sample]) -> None:
        self.rows.extend(rows)

    def flush(self, compact: bool = True) -> int:  # `compact`: PartWriter's; one gzip file has nothing to merge
        if not self.rows:
            return 0
        rows, self.rows = self.rows, []
        self._append_member(rows)
        self.written += len(rows)
        return len(rows)

    def _append_member(self, rows: Sequence[Sequence[object]]) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        # compresslevel 1: the file is read once by the analysis; the recording must stay nearly free
        data = gzip.compress(buf.getvalue().encode(), compresslevel=1)
        try:
            with self.path.open("ab") as fh:
                fh.write(data)
        except OSError as exc:
            # the member may be cut short on disk: left as it is, so that the check at report time names it
            raise WriteFailed(self.path, exc) from exc


class WriteFailed(Exception):
    """A recording file could not be written (disk full, quota, I/O error): the recording is incomplete."""

    def __init__(self, path: Path, error: OSError) -> None:
        super().__init__(f"{path}: {error.strerror or error}")
        self.path = path
        self.error = error

    def describe(self, run_dir: Path | None = None) -> str:
        """`disk full writing samples/long.csv.gz (No space left on device)`: the file relative to the run folder."""
        shown = self.path.relative_to(run_dir) if run_dir is not None and self.path.is_relative_to(run_dir) \
            else self.path
        what = self.error.strerror or type(self.error).__name__
        if self.error.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"disk full writing {shown} ({what})"
        return f"cannot write {shown} ({what})"


# Locust's samples writer failed: how the process says so (a one-line reason in a file prepared at start, and this
# exit code: sysexits' EX_IOERR, distinct from a remote worker's 75). Prepared at start because on a full disk no
# new file can be created then.
WRITER_FAILED_EXIT = 74
_REASON_ROOM = 1024


def prepare_failure_note(path: Path) -> None:
    """Allocate the reason file while there is room: a later note overwrites these bytes in place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b" " * _REASON_ROOM)


def write_failure_note(path: Path, reason: str) -> None:
    data = reason.encode()[:_REASON_ROOM - 1] + b"\n"
    with path.open("r+b") as fh:
        fh.write(data)
        fh.truncate(len(data))


def read_failure_note(path: Path) -> str | None:
    """The writer's reason, or None when it never failed (the prepared file is then removed: nothing to keep)."""
    try:
        text = path.read_text(errors="replace").strip()
    except FileNotFoundError:
        return None
    if not text:
        path.unlink(missing_ok=True)
    return text or None


def read_text(path: Path) -> str:
    """The file's CSV text; a last member cut short by a killed process is dropped, the rest is kept."""
    chunks: list[str] = []
    with gzip.open(path, "rt", newline="") as fh:
        try:
            for line in fh:
                chunks.append(line)
        except (EOFError, gzip.BadGzipFile):
            # keep only complete lines from the members that were written whole
            if chunks and not chunks[-1].endswith("\n"):
                chunks.pop()
    return "".join(chunks)


@dataclass(frozen=True)
class Inspection:
    """A samples file read strictly, member by member: its complete lines, what is wrong with it, its digest."""

    text: str
    rows: int  # CSV records after the header (complete lines only)
    sha256: str
    problem: str | None  # "not gzip", "truncated" (a member cut short) or "corrupt: <why>"


_CHUNK = 1 << 16


def inspect(path: Path) -> Inspection:
    """Read every gzip member to its end; unlike read_text() a cut or corrupt member is reported, not skipped.
    Fed in chunks, so a file of many members (one per second of load) is read in one pass."""
    digest = hashlib.sha256()
    parts: list[bytes] = []
    problem: str | None = None
    member = zlib.decompressobj(wbits=31)  # 31: a gzip header and trailer
    pending = False  # the current member has begun and not yet ended
    with path.open("rb") as fh:
        while problem is None and (chunk := fh.read(_CHUNK)):
            digest.update(chunk)
            buf = chunk
            while buf and problem is None:
                try:
                    parts.append(member.decompress(buf))
                except zlib.error as exc:
                    problem = "not gzip" if not parts and not pending else f"corrupt: {exc}"
                    break
                pending = True
                if member.eof:
                    buf, member, pending = member.unused_data, zlib.decompressobj(wbits=31), False
                else:
                    buf = b""
        if problem is not None:  # the digest covers the whole file whatever was readable
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
    if problem is None and pending:
        problem = "truncated"
    text = b"".join(parts).decode(errors="replace")
    if problem is not None and text and not text.endswith("\n"):
        text = text[:text.rfind("\n") + 1]  # keep complete lines only
    return Inspection(text, max(text.count("\n") - 1, 0), digest.hexdigest(), problem)


def seal(path: Path) -> tuple[int, str] | None:
    """(rows, sha256) of a closed samples file, recorded in the manifest; None when no file was written."""
    if not path.exists():
        return None
    found = inspect(path)
    return found.rows, found.sha256


@dataclass(frozen=True)
class Checked:
    """A samples file checked against what the manifest recorded when it was closed."""

    text: str
    status: str  # "verified", "not verified" (nothing recorded to check against) or "damaged"
    detail: str
    rows: int


def check(path: Path, rel: str, rows: int | None, sha256: str | None) -> Checked:
    """The file's rows if it is whole and unchanged; otherwise what is wrong, naming the file (`rel`)."""
    if not path.is_file():
        return Checked("", "damaged", f"{rel} is missing", 0)
    found = inspect(path)
    n = found.rows
    if found.problem == "not gzip":
        return Checked("", "damaged", f"{rel} is not a gzip file ({path.stat().st_size:,} bytes)", 0)
    if found.problem == "truncated":
        of = f"{n:,} of {rows:,} rows readable" if rows is not None and rows > n else f"{n:,} rows readable"
        return Checked(found.text, "damaged", f"{rel} is truncated (a gzip member cut short): {of}", n)
    if found.problem is not None:
        return Checked(found.text, "damaged", f"{rel} is {found.problem} ({n:,} rows readable before it)", n)
    if rows is not None and rows != n:
        return Checked(found.text, "damaged", f"{rel} holds {n:,} rows; {rows:,} were written", n)
    if sha256 is not None and sha256 != found.sha256:
        return Checked(found.text, "damaged", f"{rel} was changed after the run: its sha256 {found.sha256[:12]}... "
                       f"is not the {sha256[:12]}... recorded when it was closed", n)
    if rows is None or sha256 is None:
        return Checked(found.text, "not verified", f"{rel}: {n:,} rows, no row count and checksum recorded to check "
                       "them against (a run folder from before they were, or a killed run)", n)
    return Checked(found.text, "verified", f"{rel}: {n:,} rows, sha256 as recorded when it was closed", n)


def read_rows(path: Path) -> list[dict[str, str]]:
    """All rows of a samples file as dicts (for tests and small files)."""
    return list(csv.DictReader(io.StringIO(read_text(path))))
