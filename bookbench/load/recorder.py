"""What each Locust process records of every request: the samples' rows (unrounded, written to this process's
own sample parts once a second), the live figures or a worker's digest of them, and the short lists the
reconciliation reads (bookings acknowledged, open-model arrivals dropped, bookings attempted). Imported by the
locustfile; kept apart so that the recording can be read, and measured (benchmarks/hook_cost.py), on its own."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from locust.env import Environment
from locust.exception import CatchResponseError

from bookbench.artifacts.files import append_text
from bookbench.artifacts.sample_parts import PartWriter
from bookbench.artifacts.samples import Sample, SampleWriter, WriteFailed
from bookbench.load.live import Digest, LiveStats, compact


def exception_text(exc: BaseException) -> str:
    """`Class: message` on one line, or the class alone: many client-side errors have no message
    (str(RemoteDisconnected()) == "")."""
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def error_text(exception: BaseException | None) -> str:
    """The samples' `error` column: empty for a success, never empty for a failure."""
    if exception is None:
        return ""
    if isinstance(exception, CatchResponseError):  # a failure() of ours: its message is the text
        return " ".join(str(exception).split())[:300] or type(exception).__name__
    return exception_text(exception)[:300]


def failure_text(resp: Any) -> str:
    """Why an answer was not accepted: its HTTP status and the start of its body; or, when no HTTP answer came
    (status 0: refused, reset, timed out), the client-side error that stopped the request."""
    if not resp.status_code:
        error = getattr(resp, "error", None)
        return exception_text(error) if error is not None else "no HTTP response"
    return f"HTTP {resp.status_code}: {(resp.text or '')[:120]}"


class Recorder:
    """Collects every request unrounded and writes it to this process's own sample parts once a second; a worker
    also keeps a digest of them, and the short lists, for its master."""

    def __init__(self, open_model: bool) -> None:
        # the open model's `users` column holds the requests in flight (on_request), the closed model's the users
        self.open_model = open_model
        self.writer: PartWriter | SampleWriter | None = None
        self.is_worker = False
        self.unsent: list[tuple[float, float, bool]] = []  # a worker's (start, latency, ok) since its last report
        self.unsent_in_flight: tuple[float, int] | None = None  # open model: (end, in flight then), its latest
        self.bookings_path: Path | None = None
        self.pending: list[Sample] = []
        self.booked: list[tuple[int | str, float]] = []  # (appointment id, when its acknowledgement arrived)
        self.dropped: list[float] = []  # open model: intended times of arrivals that found no free capacity
        self.dropped_path: Path | None = None
        # every booking sent, as (contact, provider, start): what lets the reconciliation attribute a new row to
        # this run (a row nobody here asked for is another writer's, never a phantom of ours)
        self.attempts: list[tuple[int, int, str]] = []
        self.attempts_path: Path | None = None
        self.in_flight = 0  # open model: requests under way (the `users` column then holds this)
        self.worker = "local"
        self.env: Environment | None = None
        self.requests = 0
        self.failures = 0
        self.live: LiveStats | None = None  # set where the progress file is written (local runner or master)
        # why the recording stopped (a file could not be written), and where to say so: see _writer_failed
        self.failed: str | None = None
        self.failure_path: Path | None = None

    def on_request(self, request_type: str, name: str, response_time: float, response_length: int,
                   response: Any = None, exception: Any = None, start_time: float | None = None,
                   context: dict[str, Any] | None = None, **_: Any) -> None:
        status = int(getattr(response, "status_code", 0) or 0)
        if self.open_model:
            users = self.in_flight
        else:
            users = self.env.runner.user_count if self.env is not None and self.env.runner is not None else 0
        error = error_text(exception)
        self.requests += 1
        self.failures += exception is not None
        intended = (context or {}).get("intended")
        self.pending.append((start_time or time.time() - response_time / 1000, float(response_time), name,
                             request_type, status, int(exception is None), error, int(response_length or 0),
                             users, self.worker, intended))

    def take_lists(self) -> tuple[list[tuple[int | str, float]], list[float], list[tuple[int, int, str]]]:
        booked, self.booked = self.booked, []
        dropped, self.dropped = self.dropped, []
        attempts, self.attempts = self.attempts, []
        return booked, dropped, attempts

    def take_digest(self) -> tuple[Digest, tuple[float, int] | None]:
        """A worker's live figures since its last report, compacted (load/live.py), and its latest in-flight count."""
        rows, self.unsent = self.unsent, []
        return compact(rows), self.unsent_in_flight

    def flush_local(self, last: bool = False) -> None:
        """Write this process's rows (and, on a local runner or master, the lists) to the run's files. `last`: the
        process is quitting, its files are sealed or shipped next (no compaction is started)."""
        rows, self.pending = self.pending, []
        self.write_rows(rows, last)
        if not self.is_worker:  # a worker's lists go to its master, which writes them
            self.store(*self.take_lists())

    def write_rows(self, rows: list[Sample], last: bool = False) -> None:
        """Raises WriteFailed naming the part that could not be written."""
        if self.failed is not None:
            return  # the recording already stopped: Locust is quitting with the reason
        for row in rows:
            # the open model's users column holds the process's requests in flight (on_request)
            if self.live is not None:
                self.live.add(row[0], row[1], bool(row[5]), row[8] if self.open_model else None, row[9])
            elif self.is_worker:
                self.unsent.append((row[0], row[1], bool(row[5])))
                if self.open_model:
                    self.unsent_in_flight = (row[0] + row[1] / 1000, row[8])
        if self.writer is not None and rows:
            self.writer.extend(rows)
            self.writer.flush(compact=not last)

    def store(self, booked: list[tuple[int | str, float]], dropped: list[float],
              attempts: list[tuple[int, int, str]]) -> None:
        """Append the lists to the run's files; raises WriteFailed naming the file that could not be written."""
        if self.failed is not None:
            return
        if self.attempts_path is not None and attempts:
            _append(self.attempts_path, "".join(f"{c} {p} {start}\n" for c, p, start in attempts))
        if self.dropped_path is not None and dropped:
            _append(self.dropped_path, "".join(f"{t:.6f}\n" for t in dropped))
        if self.bookings_path is not None and booked:
            _append(self.bookings_path, "".join(f"{i} {t:.6f}\n" for i, t in booked))


def _append(path: Path, text: str) -> None:
    try:
        append_text(path, text)
    except OSError as exc:
        raise WriteFailed(path, exc) from exc
