"""A remote worker's samples, carried to its master over Locust's own channel when the scenario ends.

A worker on another machine cannot write into the run folder, so it records into a folder of its own
(`bookbench worker`'s work dir) and, when its load has stopped, seals it into one file and sends that file to the
master in chunks of at most CHUNK_BYTES (Locust's custom messages: `runner.send_message` / `register_message`). The
master writes each file under `<name>.tmp` as the chunks come, in order, and renames it into
`samples/<scenario>/` only once its size and sha256 match what the worker announced on the last chunk: a file under
its final name is always whole. The master waits for every remote worker's DONE before it quits (bounded: a worker
that falls silent is given up), and leaves a receipt beside the folder (`samples/<scenario>_remote.json`) naming
every worker that delivered nothing, every file that arrived damaged, and every worker that stopped recording: the
pipeline says each one, and the three counts then disagree; never silent.

No Locust import here: the locustfile wires these to its runner, and the tests drive them without one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa

from bookbench.artifacts.files import replace_atomically
from bookbench.artifacts.sample_parts import SealedFile, process_name, rows_in

# the message types (Locust's namespace is shared with its own: all prefixed)
HELLO = "bookbench_samples_hello"  # worker -> master at start: "expect my samples at the end"
REQUEST = "bookbench_samples_request"  # master -> worker: "stop your load and send them now"
CHUNK = "bookbench_samples_chunk"  # worker -> master: {file, offset, data[, size, sha256, rows on the last]}
DONE = "bookbench_samples_done"  # worker -> master: {files: {name: rows}, failed: why it stopped recording | None}
ACK = "bookbench_samples_ack"  # master -> worker: {file, ok}: a whole file may go from the worker's disk
CHUNK_BYTES = 1 << 20
# how long the master waits without hearing from any worker it still waits for, beyond Locust's stop timeout (a
# worker first lets its users finish their request in flight, up to that timeout, then sends)
IDLE_S = 20.0
RECEIPT_FORMAT = 1
_FILE = re.compile(r"^[A-Za-z0-9_-]+\.parquet$")

Send = Callable[[str, dict[str, Any]], None]


def is_file_name(name: str) -> bool:
    """A name a samples file may have when it crosses machines: no folder in it, a sealed file's suffix."""
    return bool(_FILE.match(name))


def receipt_path(samples_dir: Path) -> Path:
    """`samples/<scenario>_remote.json`, beside the scenario's samples folder (as `<scenario>_dropped.txt`)."""
    return samples_dir.with_name(f"{samples_dir.name}_remote.json")


def send_files(folder: Path, sealed: list[SealedFile], send: Send, failed: str | None) -> None:
    """The worker's side: each sealed file in chunks (the size, sha256 and rows on its last), then DONE."""
    for entry in sealed:
        name = Path(entry.path).name
        path = folder / name
        size = path.stat().st_size
        offset = 0
        with path.open("rb") as fh:
            while True:
                data = fh.read(CHUNK_BYTES)
                msg: dict[str, Any] = {"file": name, "offset": offset, "data": data}
                offset += len(data)
                if offset >= size:
                    send(CHUNK, {**msg, "size": size, "sha256": entry.sha256, "rows": entry.rows})
                    break
                send(CHUNK, msg)
    send(DONE, {"files": {Path(e.path).name: e.rows for e in sealed}, "failed": failed})


@dataclass
class _Incoming:
    fh: BinaryIO
    tmp: Path
    sha: Any = field(default_factory=hashlib.sha256)
    written: int = 0


class Receiver:
    """The master's side: files written as their chunks arrive, kept only when whole, and who delivered what."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.expected: set[str] = set()
        self.done: set[str] = set()
        self.delivered: dict[str, dict[str, int]] = {}  # worker -> {file: rows}, files whole under their name
        self.problems: list[str] = []
        self.heard = time.monotonic()
        self._open: dict[tuple[str, str], _Incoming] = {}
        self._broken: set[tuple[str, str]] = set()  # named once; its later chunks are dropped

    def hello(self, worker: str) -> None:
        self.expected.add(worker)
        self.heard = time.monotonic()

    def heard_now(self) -> None:
        """The wait starts: silence is counted from now, not from the workers' hellos at the start."""
        self.heard = time.monotonic()

    def pending(self) -> set[str]:
        return self.expected - self.done

    def idle_s(self) -> float:
        return time.monotonic() - self.heard

    def chunk(self, worker: str, data: dict[str, Any]) -> tuple[str, bool] | None:
        """Write one chunk; on the file's last chunk, (its name, whether it was kept) for the worker's ACK."""
        self.hello(worker)
        name = str(data.get("file"))
        key = (worker, name)
        if key in self._broken:
            return (name, False) if "sha256" in data else None
        # a worker writes only the file named after itself: never another's, never a local worker's
        if not is_file_name(name) or name != f"{process_name(worker)}.parquet":
            return self._fail(key, f"worker {worker} sent a file named {name!r}, not its own; refused")
        incoming = self._open.get(key)
        offset, payload = int(data.get("offset", -1)), bytes(data.get("data") or b"")
        try:
            if incoming is None:
                if offset != 0:
                    return self._fail(key, f"{name} from worker {worker}: its first chunk starts at byte {offset:,}")
                self.folder.mkdir(parents=True, exist_ok=True)
                tmp = self.folder / f"{name}.tmp"
                incoming = self._open[key] = _Incoming(tmp.open("wb"), tmp)
            if offset != incoming.written:
                return self._fail(key, f"{name} from worker {worker} arrived damaged: a chunk at byte {offset:,} "
                                       f"where byte {incoming.written:,} was due (a chunk lost on the way)")
            incoming.fh.write(payload)
        except OSError as exc:
            return self._fail(key, f"{name} from worker {worker} could not be written here: "
                                   f"{exc.strerror or exc}")
        incoming.sha.update(payload)
        incoming.written += len(payload)
        if "sha256" not in data:
            return None
        return self._finish(key, incoming, int(data.get("size", -1)), str(data["sha256"]), int(data.get("rows", -1)))

    def _finish(self, key: tuple[str, str], incoming: _Incoming, size: int, sha256: str,
                rows: int) -> tuple[str, bool]:
        worker, name = key
        del self._open[key]
        try:
            incoming.fh.close()
        except OSError as exc:
            self._broken.add(key)
            return self._drop(incoming, f"{name} from worker {worker} could not be written here: "
                                        f"{exc.strerror or exc}")
        found = incoming.sha.hexdigest()
        if incoming.written != size or found != sha256:
            self._broken.add(key)
            return self._drop(incoming, f"{name} from worker {worker} arrived damaged: {incoming.written:,} bytes, "
                                        f"sha256 {found[:12]}...; the worker sent {size:,} bytes, sha256 "
                                        f"{sha256[:12]}...")
        try:
            held = rows_in(incoming.tmp)
        except (OSError, pa.ArrowException):
            held = -1
        if held != rows:
            self._broken.add(key)
            return self._drop(incoming, f"{name} from worker {worker} holds {held:,} rows, the worker wrote "
                                        f"{rows:,}")
        try:
            os.replace(incoming.tmp, self.folder / name)
        except OSError as exc:
            self._broken.add(key)
            return self._drop(incoming, f"{name} from worker {worker} could not be kept: {exc.strerror or exc}")
        self.delivered.setdefault(worker, {})[name] = rows
        return name, True

    def _drop(self, incoming: _Incoming, problem: str) -> tuple[str, bool]:
        with contextlib.suppress(OSError):
            incoming.tmp.unlink()
        self.problems.append(problem)
        return incoming.tmp.name.removesuffix(".tmp"), False

    def _fail(self, key: tuple[str, str], problem: str) -> tuple[str, bool]:
        self._broken.add(key)
        incoming = self._open.pop(key, None)
        if incoming is None:
            self.problems.append(problem)
            return key[1], False
        with contextlib.suppress(OSError):
            incoming.fh.close()
        return self._drop(incoming, problem)

    def finished(self, worker: str, data: dict[str, Any]) -> None:
        """A worker's DONE: every file it announced must be here whole, and a recording it stopped is named."""
        self.hello(worker)
        self.done.add(worker)
        got = self.delivered.get(worker, {})
        for name, rows in dict(data.get("files") or {}).items():
            if name not in got and (worker, name) not in self._broken:
                self.problems.append(f"{name} from worker {worker} ({int(rows):,} rows) never arrived whole")
        if data.get("failed"):
            self.problems.append(f"worker {worker} stopped recording: {data['failed']}")

    def give_up(self, workers: set[str], why: str) -> None:
        for worker in sorted(workers):
            self.done.add(worker)
            self.problems.append(f"worker {worker} {why}: its samples are not in the run")
        for key in [k for k in self._open if k[0] in workers]:
            self._fail(key, f"{key[1]} from worker {key[0]} was cut off after {self._open[key].written:,} bytes")

    def receipt(self) -> dict[str, Any]:
        return {"format": RECEIPT_FORMAT, "expected": sorted(self.expected),
                "delivered": {w: self.delivered[w] for w in sorted(self.delivered)}, "problems": self.problems}

    def write_receipt(self, path: Path) -> None:
        replace_atomically(path, json.dumps(self.receipt(), indent=2, sort_keys=True) + "\n")


def read_receipt(path: Path) -> list[str] | None:
    """The problems a master recorded with its remote workers' samples; None when it left no receipt (killed
    before the end, or a receipt that does not read)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != RECEIPT_FORMAT:
        return None
    return [str(p) for p in data.get("problems") or []]
