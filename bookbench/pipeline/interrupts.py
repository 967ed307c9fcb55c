"""Ctrl-C, SIGTERM and SIGHUP: the first one stops the run, the ones after it cannot cut the clean-up short by
accident.

The first signal raises KeyboardInterrupt where the run is (Locust is stopped, what was measured is kept). A
second one, often pressed a fraction of a second later out of impatience, used to land inside that clean-up and
skip the counts, the audit and the reconciliation, and then the report. Now later signals only count: the second
says the run is stopping, a third asks to skip the remaining integrity steps (which the report then shows as
skipped, and the decision is NO-GO). The report is always written. SIGKILL remains for a hard stop.

SIGHUP (the terminal or the SSH session closed) used to kill the command on the spot, leaving the manifest
`running` and every child sending load. It is now a stop like SIGTERM, and since the terminal it came from is
usually gone, the standard streams are made to swallow writes to an output that went away (EIO from a hung-up
terminal, EPIPE from a closed pipe): the clean-up, the manifest and the report must not die on a progress line.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

_NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}
# a write to a terminal that was hung up fails with EIO, to a pipe whose reader is gone with EPIPE
_GONE = (errno.EIO, errno.EPIPE)


@dataclass
class _State:
    first: str | None = None  # "Ctrl-C", "SIGTERM" or "SIGHUP"
    count: int = 0
    # inside a clean-up step (deferred()): a first signal is noted but raises nothing, so that it cannot cut the
    # step short (a server half stopped) or replace the error the clean-up is running for
    deferring: int = 0


_state = _State()


def _handler(signum: int, _frame: FrameType | None) -> None:
    _state.count += 1
    if _state.first is None:
        _state.first = _NAMES.get(signal.Signals(signum), signal.Signals(signum).name)
        if not _state.deferring:
            raise KeyboardInterrupt
        _say("stopping: the clean-up step under way is finished first")
    elif _state.count == 2:
        _say("already stopping: the counts, audit and report are being written; press Ctrl-C again to skip the "
             "integrity steps (the report will then say so, NO-GO)")
    elif _state.count == 3:
        _say("skipping the remaining integrity steps; the report is still written")


def _say(text: str) -> None:
    # plain stderr write: safe inside a signal handler, and never mixed into a redrawn progress line
    sys.stderr.write(f"\n{text}\n")
    sys.stderr.flush()


class _TolerantFile(io.FileIO):
    """A standard stream's file descriptor that outlives its reader: once a write finds the output gone, /dev/null
    takes the descriptor's place (for every later write, ours or a child's) and the write counts as done."""

    def write(self, data: ReadableBuffer, /) -> int:
        try:
            return super().write(data) or 0
        except OSError as exc:
            if exc.errno not in _GONE:
                raise
            null = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(null, self.fileno())
            finally:
                os.close(null)
            return memoryview(data).nbytes


def _tolerant(stream: TextIO) -> TextIO:
    """`stream` rebuilt over a _TolerantFile of the same descriptor (same encoding and buffering); unchanged when it
    has no descriptor of its own (a test's captured output) or is tolerant already."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError, AttributeError):
        return stream
    buffer = getattr(stream, "buffer", None)
    if isinstance(getattr(buffer, "raw", None), _TolerantFile):
        return stream
    with contextlib.suppress(OSError):  # what the old stream still held is lost with its reader
        stream.flush()
    return io.TextIOWrapper(io.BufferedWriter(_TolerantFile(fd, "w", closefd=False)),
                            encoding=getattr(stream, "encoding", None) or "utf-8",
                            errors=getattr(stream, "errors", None) or "strict",
                            line_buffering=getattr(stream, "line_buffering", False),
                            write_through=getattr(stream, "write_through", False))


def install() -> None:
    """Ctrl-C, SIGTERM and SIGHUP all mean "stop and keep what was measured", even when started from a script or a
    background job, which inherits SIGINT as ignored. A SIGHUP the command was started without (`nohup`, which
    sets it ignored) stays ignored: that is the user asking for the command to outlive the terminal."""
    _state.first, _state.count = None, 0
    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)
    if signal.getsignal(signal.SIGHUP) != signal.SIG_IGN:
        signal.signal(signal.SIGHUP, _handler)
    sys.stdout = _tolerant(sys.stdout)
    sys.stderr = _tolerant(sys.stderr)


@contextlib.contextmanager
def deferred(then_raise: bool) -> Iterator[None]:
    """A clean-up step runs to its end: no signal raises inside it (they are counted as usual). A first signal
    received meanwhile raises KeyboardInterrupt once the step is done when `then_raise` (nothing else was
    unwinding: the stop still happens, as late as the step needs); otherwise the error being cleaned up after stays
    the command's outcome, and the signal is only noted."""
    before = _state.first
    _state.deferring += 1
    try:
        yield
    finally:
        _state.deferring -= 1
    if then_raise and before is None and _state.first is not None and not _state.deferring:
        raise KeyboardInterrupt


def received() -> str | None:
    """"Ctrl-C", "SIGTERM" or "SIGHUP" once the run was told to stop, else None."""
    return _state.first


def skip_integrity() -> bool:
    """The user insisted (a third signal): integrity steps still to come are skipped and reported as such."""
    return _state.count >= 3


def reason() -> str:
    by = _state.first or "Ctrl-C"
    if by == "SIGHUP":
        return "stopped by SIGHUP (the terminal or SSH session was closed)"
    return "interrupted by the user (Ctrl-C)" if by == "Ctrl-C" else f"stopped by {by}"
