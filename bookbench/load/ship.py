"""A remote worker's samples, carried to its master over Locust's own channel when the scenario ends.

A worker on another machine cannot write into the run folder, so it records into a folder of its own
(`bookbench worker`'s work dir) and, when its load has stopped, sends its segments and parts as they are (each one
already a whole Parquet file: the worker merges nothing more, so its message loop and heartbeats never wait on a
merge however long the soak was; the master's seal merges them after Locust exited) in chunks of at most CHUNK_BYTES
(Locust's custom messages: `runner.send_message` / `register_message`). The master acknowledges every chunk, and the
worker keeps at most WINDOW chunks unacknowledged: what waits in the sockets' queues is a few MiB, not the 1,000
messages of ZeroMQ's default high-water mark (about 1 GB of chunks on each side). The master writes each file under
`<name>.tmp` as the chunks come, in order, and renames it into `samples/<scenario>/` only once its size and sha256
match what the worker announced on the file's last chunk: a file under its final name is always whole. The master
waits for every remote worker's DONE before it quits (bounded: a worker that falls silent is given up), and leaves a
receipt beside the folder (`samples/<scenario>_remote.json`) naming every worker that delivered nothing, every file
that arrived damaged or never arrived, and every worker that stopped recording: the pipeline says each one, and the
three counts then disagree; never silent.

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

from bookbench.artifacts import sample_parts
from bookbench.artifacts.files import replace_atomically
from bookbench.artifacts.sample_parts import process_name, rows_in

# the message types (Locust's namespace is shared with its own: all prefixed)
HELLO = "bookbench_samples_hello"  # worker -> master at start: "expect my samples at the end"
REQUEST = "bookbench_samples_request"  # master -> worker: "stop your load and send them now"
# worker -> master: {seq, file, offset, data[, size, sha256, rows on a file's last]}; seq counts the transfer's chunks
CHUNK = "bookbench_samples_chunk"
# worker -> master: {files: {name: rows}, failed: why it stopped recording | None, problems: [what it could not send]}
DONE = "bookbench_samples_done"
# master -> worker: {chunks: how many it received}, with {file, ok} on a file's last chunk (a whole file may go from
# the worker's disk); the master also answers HELLO with {chunks: 0}
ACK = "bookbench_samples_ack"
CHUNK_BYTES = 1 << 20
WINDOW = 8  # chunks a worker may have sent and not yet seen acknowledged
WINDOW_POLL_S = 0.02
# how long the master waits without hearing from any worker it still waits for, beyond Locust's stop timeout (a
# worker first lets its users finish their request in flight, up to that timeout, then sends)
IDLE_S = 20.0
RECEIPT_FORMAT = 1
_FILE = re.compile(r"^[A-Za-z0-9_-]+\.parquet$")

Send = Callable[[str, dict[str, Any]], None]


def is_file_name(name: str) -> bool:
    """A name a samples file may have when it crosses machines: no folder in it, a Parquet file's suffix."""
    return bool(_FILE.match(name))


def receipt_path(samples_dir: Path) -> Path:
    """`samples/<scenario>_remote.json`, beside the scenario's samples folder (as `<scenario>_dropped.txt`)."""
    return samples_dir.with_name(f"{samples_dir.name}_remote.json")


class Stalled(Exception):
    """The master acknowledged nothing for the window's bound: the transfer stops, its files stay on the worker."""


class Window:
    """The worker's count of chunks sent and acknowledged: a chunk goes only while fewer than `size` are
    unacknowledged. `sleep` yields (gevent's on a worker: its message loop must run to read the acks)."""

    def __init__(self, stall_s: float, sleep: Callable[[float], None], size: int = WINDOW) -> None:
        self.size = size
        self.stall_s = stall_s
        self.sent = 0
        self.acked = 0
        self._sleep = sleep

    def acknowledged(self, chunks: int) -> None:
        self.acked = max(self.acked, chunks)

    def take(self, where: str) -> int:
        """The next chunk's seq, once there is room; raises Stalled naming the chunk when no acknowledgement came
        for stall_s."""
        seen, since = self.acked, time.monotonic()
        while self.sent - self.acked >= self.size:
            if self.acked != seen:
                seen, since = self.acked, time.monotonic()
            elif time.monotonic() - since > self.stall_s:
                raise Stalled(f"the master acknowledged no chunk for {self.stall_s:g} s ({self.sent - self.acked} "
                              f"unacknowledged; {where} not sent)")
            self._sleep(WINDOW_POLL_S)
        self.sent += 1
        return self.sent - 1


def send_files(folder: Path, send: Send, failed: str | None, window: Window) -> None:
    """The worker's side: every whole samples file of the folder as it is, in chunks (its size, sha256 and rows on
    its last), then DONE announcing every file and its rows (the master names each one that did not arrive whole)
    and what stopped the transfer, if anything did."""
    announced: dict[str, int] = {}
    problems: list[str] = []
    try:
        paths = sample_parts.files(folder)
        for path in paths:
            try:
                announced[path.name] = rows_in(path)
            except (OSError, pa.ArrowException) as exc:  # never a part the writer renamed: it renames whole files
                problems.append(f"{path.name} does not read on the worker ({exc}); kept in {folder}")
        for path in paths:
            if path.name in announced:
                _send_file(path, announced[path.name], send, window)
    except Stalled as exc:
        problems.append(f"{exc}; its samples files stay in {folder}")
    except OSError as exc:
        problems.append(f"its samples could not be read on the worker ({exc.strerror or exc}); kept in {folder}")
    send(DONE, {"files": announced, "failed": failed, "problems": problems})


def _send_file(path: Path, rows: int, send: Send, window: Window) -> None:
    size = path.stat().st_size
    sha = hashlib.sha256()  # from the bytes sent: the file is read once
    offset = 0
    with path.open("rb") as fh:
        while True:
            seq = window.take(f"{path.name} from byte {offset:,}")
            data = fh.read(CHUNK_BYTES)
            sha.update(data)
            msg: dict[str, Any] = {"seq": seq, "file": path.name, "offset": offset, "data": data}
            offset += len(data)
            if offset >= size:
                send(CHUNK, {**msg, "size": size, "sha256": sha.hexdigest(), "rows": rows})
                return
            send(CHUNK, msg)


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

    def chunk(self, worker: str, data: dict[str, Any]) -> dict[str, Any]:
        """Write one chunk; the worker's ACK: the chunks received so far (its window moves on, whatever became of
        the chunk), and on a file's last chunk its name and whether it was kept."""
        ack: dict[str, Any] = {"chunks": int(data.get("seq", -1)) + 1}
        kept = self._write(worker, data)
        if kept is not None and "sha256" in data:  # a file refused earlier is answered once, at its end
            ack["file"], ack["ok"] = kept
        return ack

    def _write(self, worker: str, data: dict[str, Any]) -> tuple[str, bool] | None:
        self.hello(worker)
        name = str(data.get("file"))
        key = (worker, name)
        if key in self._broken:
            return (name, False) if "sha256" in data else None
        # a worker writes only its own parts and segments: never another's, never a local worker's
        span = sample_parts.span(name)
        if not is_file_name(name) or span is None or span[0] != process_name(worker):
            return self._fail(key, f"worker {worker} sent a file named {name!r}, not one of its own parts or "
                                   "segments; refused")
        incoming = self._open.get(key)
        offset, payload = int(data.get("offset", -1)), bytes(data.get("data") or b"")
        try:
            if incoming is None:
                if offset != 0:
                    return self._fail(key, f"{name} from worker {worker}: its first chunk starts at byte {offset:,}")
                if (self.folder / name).exists():  # delivered already: a second copy would count its rows twice
                    return self._fail(key, f"{name} from worker {worker} is already in the run; refused")
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
        for key in [k for k in self._open if k[0] == worker]:  # a transfer the worker gave up (named in problems)
            self._fail(key, f"{key[1]} from worker {worker} was cut off after {self._open[key].written:,} bytes")
        got = self.delivered.get(worker, {})
        for name, rows in dict(data.get("files") or {}).items():
            if name not in got and (worker, name) not in self._broken:
                self.problems.append(f"{name} from worker {worker} ({int(rows):,} rows) never arrived whole")
        if data.get("failed"):
            self.problems.append(f"worker {worker} stopped recording: {data['failed']}")
        self.problems += [f"worker {worker}: {problem}" for problem in data.get("problems") or []]

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
