"""The `bookbench` command line: the command tree. Each command lives in its own module and imports its stage
only when it runs, so `bookbench --help` stays fast."""

from __future__ import annotations

from typing import Any

import typer
import typer.core

from bookbench.cli.capacity import capacity
from bookbench.cli.check import check
from bookbench.cli.compare import calibrate, compare
from bookbench.cli.db import db_app
from bookbench.cli.indexes import idx_app
from bookbench.cli.report import report, review
from bookbench.cli.run import run
from bookbench.cli.serve import serve
from bookbench.cli.sweep import sweep
from bookbench.cli.target import target_app
from bookbench.cli.worker import worker

_display_type = typer.core.TyperOption.display_type_rich


def _no_type_on_flags(self: typer.core.TyperOption, ctx: Any) -> str | None:
    # typer's help prints a `<bool>` value type after every flag, --help included, though a flag takes no value
    return None if self.is_flag else _display_type(self, ctx)


typer.core.TyperOption.display_type_rich = _no_type_on_flags  # type: ignore[method-assign]

app = typer.Typer(help="Load tests, index benchmarks and pre-deployment checks for a clinic-booking API.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(db_app, name="db")
app.add_typer(idx_app, name="indexes")
app.add_typer(target_app, name="target")
app.command("check")(check)
app.command("run")(run)
app.command("report")(report)
app.command("review")(review)
app.command("compare")(compare)
app.command("calibrate")(calibrate)
app.command("sweep")(sweep)
app.command("capacity")(capacity)
app.command("serve")(serve)
app.command("worker")(worker)


def main() -> None:  # pragma: no cover - console script entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
