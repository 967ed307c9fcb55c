"""The signal policy of a run: the first Ctrl-C or SIGTERM interrupts, later ones cannot cut the clean-up short,
a third asks to skip the integrity steps (the judge then fails them: see test_judge)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from bookbench.pipeline import interrupts


@pytest.fixture
def handlers() -> Iterator[None]:
    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    saved = [signal.getsignal(s) for s in sigs]
    interrupts.install()
    yield
    for sig, handler in zip(sigs, saved, strict=True):
        signal.signal(sig, handler)


def _deliver(sig: int) -> None:
    os.kill(os.getpid(), sig)
    time.sleep(0.05)  # the handler runs in the main thread at the next bytecode


def test_only_the_first_signal_interrupts_and_a_third_skips_integrity(handlers: None,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert interrupts.received() is None and not interrupts.skip_integrity()
    with pytest.raises(KeyboardInterrupt):
        _deliver(signal.SIGTERM)
    assert interrupts.received() == "SIGTERM" and interrupts.reason() == "stopped by SIGTERM"
    _deliver(signal.SIGINT)  # no exception: the clean-up goes on
    assert not interrupts.skip_integrity()
    assert "already stopping" in capsys.readouterr().err
    _deliver(signal.SIGINT)
    assert interrupts.skip_integrity()
    assert "skipping the remaining integrity steps" in capsys.readouterr().err


def test_ctrl_c_is_named_as_such(handlers: None) -> None:
    with pytest.raises(KeyboardInterrupt):
        _deliver(signal.SIGINT)
    assert interrupts.reason() == "interrupted by the user (Ctrl-C)"
