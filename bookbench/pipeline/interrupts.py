"""Ctrl-C and SIGTERM: the first one stops the run, the ones after it cannot cut the clean-up short by accident.

The first signal raises KeyboardInterrupt where the run is (Locust is stopped, what was measured is kept). A
second one, often pressed a fraction of a second later out of impatience, used to land inside that clean-up and
skip the counts, the audit and the reconciliation, and then the report. Now later signals only count: the second
says the run is stopping, a third asks to skip the remaining integrity steps (which the report then shows as
skipped, and the decision is NO-GO). The report is always written. SIGKILL remains for a hard stop.
"""

from __future__ import annotations

import signal
import sys
from dataclasses import dataclass
from types import FrameType

_NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}


@dataclass
class _State:
    first: str | None = None  # "Ctrl-C" or "SIGTERM"
    count: int = 0


_state = _State()


def _handler(signum: int, _frame: FrameType | None) -> None:
    _state.count += 1
    if _state.first is None:
        _state.first = _NAMES.get(signal.Signals(signum), signal.Signals(signum).name)
        raise KeyboardInterrupt
    if _state.count == 2:
        _say("already stopping: the counts, audit and report are being written; press Ctrl-C again to skip the "
             "integrity steps (the report will then say so, NO-GO)")
    elif _state.count == 3:
        _say("skipping the remaining integrity steps; the report is still written")


def _say(text: str) -> None:
    # plain stderr write: safe inside a signal handler, and never mixed into a redrawn progress line
    sys.stderr.write(f"\n{text}\n")
    sys.stderr.flush()


def install() -> None:
    """Ctrl-C and SIGTERM both mean "stop and keep what was measured", even when started from a script or a
    background job, which inherits SIGINT as ignored."""
    _state.first, _state.count = None, 0
    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)


def received() -> str | None:
    """"Ctrl-C" or "SIGTERM" once the run was told to stop, else None."""
    return _state.first


def skip_integrity() -> bool:
    """The user insisted (a third signal): integrity steps still to come are skipped and reported as such."""
    return _state.count >= 3


def reason() -> str:
    by = _state.first or "Ctrl-C"
    return "interrupted by the user (Ctrl-C)" if by == "Ctrl-C" else f"stopped by {by}"
