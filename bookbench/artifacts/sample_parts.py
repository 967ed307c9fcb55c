"""Samples format 3: per scenario a folder of Parquet files, one series of parts per load process, sealed at the end.

Each load process (the local runner, the master, each worker) writes its own parts,
`samples/<scenario>/<process>-<seq>.parquet`, each a complete file written under `.tmp` and renamed: a part present
under its final name is always whole, and a killed process loses only the rows it had not flushed yet. Every
COMPACT_EVERY parts are merged off the load's loop (sample_compaction.py) into a segment, named by the first and
last part it holds (`<process>-seg<first>_<last>.parquet`), as many segments into a bigger one. Once the scenario's
processes exited, seal() merges each process's files into `<process>.parquet` (streaming, row groups of 1M rows) and
the manifest records every final file with its rows and sha256. A merged file is written as a part is, names in its
metadata every file it holds, and these are removed only after its rename: a reader finding both counts those rows
once. A folder never sealed (a killed run) still reads: files() takes every whole `*.parquet` in it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from bookbench.artifacts.manifest import SealedFile as SealedFile  # the manifest's model, named here too
from bookbench.artifacts.sample_compaction import Compactor
from bookbench.artifacts.samples import COLUMNS, Sample, WriteFailed

FORMAT = 3
FORMAT_KEY = b"bookbench.samples_format"
# the parts (and segments) a segment or sealed file was merged from, all of them down to the parts: a kill between
# the merged file's rename and its inputs' removal leaves both on disk, and the readers must not count those rows twice
MERGED_KEY = b"bookbench.merged_parts"
_STR = pa.dictionary(pa.int32(), pa.utf8())
SCHEMA = pa.schema([
    pa.field("ts", pa.float64(), nullable=False),
    pa.field("latency_ms", pa.float64(), nullable=False),
    pa.field("name", _STR, nullable=False),
    pa.field("method", _STR, nullable=False),
    pa.field("status", pa.int32(), nullable=False),
    pa.field("ok", pa.int8(), nullable=False),
    pa.field("error", _STR, nullable=False),
    pa.field("bytes", pa.int64(), nullable=False),
    pa.field("users", pa.int32(), nullable=False),
    pa.field("worker", _STR, nullable=False),
    pa.field("intended", pa.float64(), nullable=True),
], metadata={FORMAT_KEY: str(FORMAT).encode()})
assert tuple(SCHEMA.names) == COLUMNS  # format 2's CSV columns, in their order: one vocabulary for every reader

FLUSH_ROWS = 100_000  # a part holds at most this many rows (a flush comes sooner when this many are buffered)
ROW_GROUP_ROWS = 1_000_000  # a sealed file's row groups: big enough for fast scans, small enough to stream
# a segment's, merged in the load's process: its peak memory grows with them (an hour's merge at 3,000 req/s, same
# CPU: RSS +86 MB at 100,000 rows, +172 MB at 250,000)
SEGMENT_ROW_GROUP_ROWS = 100_000
# a part is written once a second on the load's path: snappy, and statistics only for `ts` (first_ts() reads them),
# cost the least per row (measured by benchmarks/hook_cost.py); a sealed file, written once after the load, takes
# zstd level 1: about 0.7x a snappy part's size
PART_OPTIONS: dict[str, object] = {"compression": "snappy", "write_statistics": ["ts"],
                                   "use_dictionary": ["name", "method", "error", "worker"]}
COMPRESSION = "zstd"
COMPRESSION_LEVEL = 1
COMPACT_EVERY = 60  # parts per segment (a minute of flushes), and segments per segment of the next level
_PART = re.compile(r"^(?P<process>[A-Za-z0-9_-]+)-(?P<seq>[0-9]{6})\.parquet$")
# `_` between the two numbers: a name ending in `-<6 digits>.parquet` would read as a part
_SEGMENT = re.compile(r"^(?P<process>[A-Za-z0-9_-]+)-seg(?P<first>[0-9]{6})_(?P<last>[0-9]{6})\.parquet$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_CHUNK = 1 << 20


def process_name(raw: str) -> str:
    """A process id usable in a file name: [A-Za-z0-9_-] only (Locust's worker ids hold a host name)."""
    return _UNSAFE.sub("_", raw) or "process"


def part_name(process: str, seq: int) -> str:
    return f"{process}-{seq:06d}.parquet"


def segment_name(process: str, first: int, last: int) -> str:
    return f"{process}-seg{first:06d}_{last:06d}.parquet"


def span(name: str) -> tuple[str, int, int] | None:
    """(process, first part, last part) of a part's or a segment's name; None for any other name."""
    if m := _PART.match(name):
        return m["process"], int(m["seq"]), int(m["seq"])
    if m := _SEGMENT.match(name):
        return m["process"], int(m["first"]), int(m["last"])
    return None


def _owner(name: str) -> str:
    """The process whose file this is: a part's, a segment's, or the sealed `<process>.parquet`'s."""
    found = span(name)
    return found[0] if found is not None else name.removesuffix(".parquet")


def to_table(rows: list[Sample]) -> pa.Table:
    """Rows (the hook's tuples) as one Arrow table of SCHEMA; strings dictionary-encoded."""
    cols = list(zip(*rows, strict=True)) if rows else [()] * len(COLUMNS)
    arrays = [pa.array(col, type=field.type.value_type).dictionary_encode() if pa.types.is_dictionary(field.type)
              else pa.array(col, type=field.type) for col, field in zip(cols, SCHEMA, strict=True)]
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


class PartWriter:
    """Buffers one process's rows and writes them as numbered parts, each whole on disk or absent; every
    `compact_every` parts are merged into a segment off the caller's loop (0: never)."""

    def __init__(self, folder: Path, process: str, compact_every: int = COMPACT_EVERY) -> None:
        self.folder = folder
        self.process = process_name(process)
        folder.mkdir(parents=True, exist_ok=True)  # an empty folder is a scenario that recorded nothing, not a loss
        self.rows: list[Sample] = []
        self.written = 0
        # after the parts already there or merged: a process started again under the same name never reuses a
        # part's or a segment's name (a merged file names the parts it holds, and a reader skips those)
        names: set[str] = set()
        for p in folder.iterdir():
            if p.suffix == ".parquet" and _owner(p.name) == self.process:
                names.add(p.name)
                if not _PART.match(p.name):
                    with contextlib.suppress(OSError, pa.ArrowException):
                        names |= _merged_parts(p)
        self.seq = max((found[2] for n in names if (found := span(n)) is not None), default=-1) + 1
        # only this writer's own parts are compacted: what an earlier process of the same name left is seal()'s
        self.compaction = Compactor(compact_every, self._segment)
        to_table([])  # pyarrow's compute functions take ~0.5 s to set up: now, not in the load's loop at its 1st flush

    def add(self, row: Sample) -> None:
        self.rows.append(row)
        if len(self.rows) >= FLUSH_ROWS:
            self.flush()

    def extend(self, rows: list[Sample]) -> None:
        self.rows.extend(rows)
        if len(self.rows) >= FLUSH_ROWS:
            self.flush()

    def flush(self, compact: bool = True) -> int:
        """Write the buffered rows as one part; raises WriteFailed naming it when the disk refuses. `compact=False`:
        the process's last flush, after which the files are sealed or shipped: no merge is started only to be given
        up at exit."""
        if not self.rows:
            return 0
        rows, self.rows = self.rows, []
        parts = [self._write(to_table(rows[start:start + FLUSH_ROWS])) for start in range(0, len(rows), FLUSH_ROWS)]
        self.written += len(rows)
        if compact:
            self.compaction.add(parts)
        return len(rows)

    def _segment(self, inputs: list[Path], go_on: Callable[[], None]) -> Path:
        """Runs in the compaction's thread: `inputs` (this writer's parts or segments, in order) merged into one
        segment, then removed; go_on() between row groups raises to give the merge up."""
        spans = [found for p in inputs if (found := span(p.name)) is not None]
        out = self.folder / segment_name(self.process, min(s[1] for s in spans), max(s[2] for s in spans))
        # on one core: the load has the other
        _write_merged(out, inputs, _held(inputs), SEGMENT_ROW_GROUP_ROWS, threads=False, go_on=go_on)
        for p in inputs:
            with contextlib.suppress(OSError):  # one left behind is named by the segment: never read twice
                p.unlink()
        return out

    def _write(self, table: pa.Table) -> Path:
        final = self.folder / part_name(self.process, self.seq)
        tmp = final.with_name(final.name + ".tmp")
        try:
            pq.write_table(table, tmp, **PART_OPTIONS)
            # no fsync: what must survive is a killed process, and the page cache outlives it; a machine crash
            # loses the run anyway
            os.replace(tmp, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()  # a cut part never takes the final name; its room goes back to the disk
            # pyarrow's message wraps the system's ("Error writing bytes to file. Detail: [errno 28] ..."): the
            # reason shown is the system's own words, as format 2's writer gave them
            plain = OSError(exc.errno, os.strerror(exc.errno)) if exc.errno else exc
            raise WriteFailed(final, plain) from exc
        self.seq += 1
        return final


def _merged_parts(path: Path) -> set[str]:
    meta = pq.read_schema(path).metadata or {}
    return set(filter(None, meta.get(MERGED_KEY, b"").decode().split(",")))


def _held(paths: list[Path]) -> set[str]:
    """Every file a merge of `paths` holds: their names, and what the merged ones among them name."""
    held = {p.name for p in paths}
    for p in paths:
        if not _PART.match(p.name):
            held |= _merged_parts(p)
    return held


def files(folder: Path) -> list[Path]:
    """Every complete samples file of the folder, sorted (a file a segment or sealed file holds is left out)."""
    if not folder.is_dir():
        return []
    found = sorted(p for p in folder.iterdir() if p.suffix == ".parquet" and p.is_file())
    merged: set[str] = set()
    for p in found:
        if not _PART.match(p.name):
            with contextlib.suppress(OSError, pa.ArrowException):  # an unreadable file is verify()'s to name
                merged |= _merged_parts(p)
    return [p for p in found if p.name not in merged]


def _by_process(folder: Path) -> dict[str, list[Path]]:
    """Each process's files that count (its sealed file, segments, parts): not those a merged file holds."""
    groups: dict[str, list[Path]] = {}
    for p in files(folder):
        groups.setdefault(_owner(p.name), []).append(p)
    return groups


def _batches(paths: list[Path], group_rows: int, threads: bool) -> Iterator[pa.Table]:
    """The parts' rows in order, regrouped into tables of `group_rows` (read batch by batch: a merged file of
    hours that gets new parts is never read whole, at most about one row group's worth is held)."""
    pending: list[pa.Table] = []
    size = 0
    for path in paths:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=FLUSH_ROWS, use_threads=threads):
            table = pa.Table.from_batches([batch])
            if not table.schema.equals(SCHEMA, check_metadata=False):  # ours never differ: the cast is for others'
                table = table.cast(SCHEMA)
            pending.append(table)
            size += table.num_rows
            while size >= group_rows:
                whole = pa.concat_tables(pending)
                yield whole.slice(0, group_rows)
                rest = whole.slice(group_rows)
                pending, size = [rest], rest.num_rows
    if size:
        yield pa.concat_tables(pending)


def _readable(path: Path) -> bool:
    try:
        rows_in(path)
    except (OSError, pa.ArrowException):
        return False
    return True


def _write_merged(out: Path, sources: list[Path], held: set[str], group_rows: int = ROW_GROUP_ROWS,
                  threads: bool = True, go_on: Callable[[], None] = lambda: None) -> None:
    """The sources' rows, in order, as one file under `out` (written under `.tmp`, renamed once whole), its metadata
    naming every file it holds."""
    schema = SCHEMA.with_metadata({**(SCHEMA.metadata or {}), MERGED_KEY: ",".join(sorted(held)).encode()})
    tmp = out.with_name(out.name + ".tmp")
    try:
        with pq.ParquetWriter(tmp, schema, compression=COMPRESSION, compression_level=COMPRESSION_LEVEL) as writer:
            for batch in _batches(sources, group_rows, threads):
                go_on()
                writer.write_table(batch, row_group_size=group_rows)
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()  # the sources stay as they were: still whole, still read
        raise


def _merge(process: str, folder: Path, counted: list[Path]) -> None:
    """`counted`: the process's files that count (_by_process), its sealed file among them if there is one."""
    final = folder / f"{process}.parquet"
    # a file that does not read (never one this module wrote: it renames only whole files) stays where it is, for
    # verify() to name; a sealed one that does not is not replaced either
    if final.exists() and not _readable(final):
        return
    sources = [p for p in counted if _readable(p)]
    sources.sort(key=lambda p: span(p.name) or ("", -1, -1))  # the sealed file's rows first, then part order
    if sources and sources != [final]:
        _write_merged(final, sources, _held(sources) - {final.name})
    # what an interrupted seal or compaction merged and had not removed yet, and what this merge holds
    done = _merged_parts(final) if final.exists() else set()
    for p in folder.iterdir():
        if p.name in done:
            p.unlink()


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def rows_in(path: Path) -> int:
    """The file's row count from its footer (raises for a file that is not whole Parquet)."""
    return int(pq.ParquetFile(path).metadata.num_rows)


def seal(folder: Path, run_dir: Path | None = None) -> list[SealedFile]:
    """Merge each process's segments and parts into `<process>.parquet`, remove them and the stray `.tmp` files
    (what killed writers and merges left unfinished), and return every final file with its rows and sha256 (paths
    relative to `run_dir`, by default the folder's grandparent: `<run>/samples/<scenario>`). Sealing again is
    harmless, and finishes a seal that was interrupted."""
    run_dir = run_dir if run_dir is not None else folder.parents[1]
    if not folder.is_dir():
        return []
    for process, counted in _by_process(folder).items():
        _merge(process, folder, counted)
    for p in folder.glob("*.tmp"):  # what killed writers left unfinished
        p.unlink()
    return [SealedFile(path=p.relative_to(run_dir).as_posix(), rows=rows_in(p), sha256=digest(p))
            for p in files(folder) if _readable(p)]


def _rel(path: Path, run_dir: Path) -> str:
    return path.relative_to(run_dir).as_posix() if path.is_relative_to(run_dir) else str(path)


def verify(run_dir: Path, rel_folder: str,
           recorded: list[SealedFile] | None) -> tuple[list[Path], str, str, int]:
    """(the whole files to read, status, detail, their rows), in the spirit of samples.check(): "verified" when every
    file the manifest recorded is there with its rows and sha256 and nothing else is; "not verified" when nothing
    was recorded (a killed run, never sealed) and every file reads; "damaged" naming the first file that does not."""
    folder = run_dir / rel_folder
    if not folder.is_dir():
        return [], "damaged", f"{rel_folder} is missing", 0
    present = files(folder)
    readable: list[Path] = []
    total = 0
    problems: list[str] = []
    for path in present:
        try:
            n = rows_in(path)
        except (OSError, pa.ArrowException):
            problems.append(f"{_rel(path, run_dir)} is not a readable Parquet file ({path.stat().st_size:,} bytes)")
            continue
        readable.append(path)
        total += n
    if recorded is None:
        if problems:
            return readable, "damaged", f"{problems[0]}; {total:,} rows readable in the other files", total
        # a merge's unfinished `.tmp` lost nothing: the files it was merging are all still there
        unfinished = sum(bool(_PART.match(p.name.removesuffix(".tmp"))) for p in folder.glob("*.tmp"))
        left = (f"; {unfinished} part(s) a killed process had not finished were skipped" if unfinished else "")
        return readable, "not verified", (f"{rel_folder}: {total:,} rows in {len(readable)} file(s), no row counts "
                                          f"and checksums recorded to check them against (a killed run){left}"), total
    by_rel = {_rel(p, run_dir): p for p in present}
    for entry in recorded:
        on_disk = by_rel.pop(entry.path) if entry.path in by_rel else None
        if on_disk is None:
            problems.append(f"{entry.path} is missing ({entry.rows:,} rows recorded)")
        elif on_disk not in readable:
            continue  # named above as unreadable
        elif (n := rows_in(on_disk)) != entry.rows:
            problems.append(f"{entry.path} holds {n:,} rows; {entry.rows:,} were written")
        elif (found := digest(on_disk)) != entry.sha256:
            problems.append(f"{entry.path} was changed after the run: its sha256 {found[:12]}... is not the "
                            f"{entry.sha256[:12]}... recorded when it was sealed")
    problems += [f"{rel} was not recorded when the folder was sealed" for rel in by_rel]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return readable, "damaged", f"{problems[0]}{more}; {total:,} rows readable", total
    return readable, "verified", (f"{rel_folder}: {total:,} rows in {len(readable)} file(s), sha256 as recorded "
                                  "when they were sealed"), total


def first_ts(paths: list[Path]) -> float | None:
    """The earliest request start (`ts`) in the files, from their footers' statistics (no row is read); None
    when they hold no row."""
    lows: list[float] = []
    for path in paths:
        meta = pq.ParquetFile(path).metadata
        col = SCHEMA.get_field_index("ts")
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(col).statistics
            if stats is not None and stats.has_min_max:
                lows.append(float(stats.min))
    return min(lows, default=None)


def export_csv(paths: list[Path], out: Path) -> int:
    """The files' rows as format 2's CSV (the same columns, gzip), written batch by batch under `.tmp` and renamed;
    returns the rows written."""
    import pyarrow.csv as pacsv  # only the export needs it

    plain = pa.schema([pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type)
                       for f in SCHEMA])
    tmp = out.with_name(out.name + ".tmp")
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    try:
        with pa.CompressedOutputStream(str(tmp), "gzip") as sink, \
                pacsv.CSVWriter(sink, plain, write_options=pacsv.WriteOptions(quoting_style="needed")) as writer:
            for path in paths:
                for batch in pq.ParquetFile(path).iter_batches(batch_size=FLUSH_ROWS):
                    writer.write_table(pa.Table.from_batches([batch]).cast(plain))
                    rows += batch.num_rows
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return rows
