"""Clean-up steps that cannot replace the error they are cleaning up after.

A run's clean-up is an ExitStack: stop the notification processes and the service, delete the run's own
bookings, release the database lease, stop the embedded server. When one of those steps raises while the stack
unwinds from the run's own error (a database fault, Ctrl-C), Python's ExitStack lets the new exception replace
the first one: a run stopped by a database fault once ended as "pg_ctl failed" with 16 lines of an older server
log for its reason. A guarded step's failure is kept as a problem of its own (one line for the manifest and the
terminal, the whole text and traceback in the run's log) and the first error goes on. A step that fails when
nothing else went wrong still fails the command: then it is the first error.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from bookbench.errors import log_exception
from bookbench.pipeline import interrupts

T = TypeVar("T")


class Teardown:
    """The clean-up problems of one command: `problems` holds one line each, `log` the details."""

    def __init__(self, log: Path, on_problem: Callable[[str], None] | None = None) -> None:
        self.log = log
        self.on_problem = on_problem  # e.g. a console line and the manifest, as each problem is found
        self.problems: list[str] = []

    def enter(self, stack: ExitStack, what: str, cm: AbstractContextManager[T]) -> T:
        """`stack.enter_context(cm)`, with cm's exit guarded; `what` names the step ("stopping the service")."""
        return stack.enter_context(_Guarded(cm, what, self))

    def callback(self, stack: ExitStack, what: str, func: Callable[[], object]) -> None:
        """`stack.callback(func)`, guarded."""
        inner = ExitStack()
        inner.callback(func)
        self.enter(stack, what, inner)

    def note(self, what: str, problem: BaseException) -> None:
        """Called inside the `except` that caught `problem`: its traceback goes to the log."""
        text = str(problem).strip()
        first = text.splitlines()[0] if text else type(problem).__name__
        line = f"{what} failed: {first}" + (f" (details in {self.log})" if "\n" in text else "")
        log_exception(self.log)
        self.problems.append(line)
        if self.on_problem is not None:
            self.on_problem(line)


class _Guarded(AbstractContextManager[T]):
    def __init__(self, cm: AbstractContextManager[T], what: str, teardown: Teardown) -> None:
        self.cm = cm
        self.what = what
        self.teardown = teardown

    def __enter__(self) -> T:
        return self.cm.__enter__()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        try:
            # a Ctrl-C or SIGHUP now cannot cut the step short (a server half stopped) nor replace the error
            with interrupts.deferred(then_raise=exc is None):
                return bool(self.cm.__exit__(exc_type, exc, tb))
        except Exception as problem:
            if exc is None or problem is exc:
                raise  # nothing was unwinding: this failure is the command's first error
            self.teardown.note(self.what, problem)
            return False  # the error that was unwinding goes on
