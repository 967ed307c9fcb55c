"""The `bookbench` command line: the command tree. Each command lives in its own module and imports its stage
only when it runs, so `bookbench --help` stays fast."""

from __future__ import annotations

from typing import Annotated, Any

import typer
import typer.core

from bookbench.cli.capacity import capacity
from bookbench.cli.check import check
from bookbench.cli.compare import calibrate, compare
from bookbench.cli.db import db_app
from bookbench.cli.export import export
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

# the codes of bookbench/errors.py, as --help shows them ("\b" keeps click from joining the lines); 1 only on the
# commands that judge something (a check, a run, a review)
_JUDGED = "1 NO-GO: a check, threshold, review target or integrity check failed"
_CODES = ["0 done / GO", "2 bad input (one line naming the option, key or file)",
          "3 the environment failed (database, service, Locust, disk) or a bug",
          "130 interrupted (Ctrl-C, SIGTERM, SIGHUP)"]


def exit_codes(judges: bool) -> str:
    """The help's epilog: the exit codes a command can end with."""
    codes = [_CODES[0], _JUDGED, *_CODES[1:]] if judges else _CODES
    return "\b\nExit codes:\n" + "\n".join(f"  {code}" for code in codes)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"bookbench {version('bookbench')}")
        raise typer.Exit()


app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, epilog=exit_codes(judges=True))


@app.callback()
def _root(version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True, help="print the version and exit")] = False) -> None:
    """Load tests, index benchmarks and pre-deployment checks for a clinic-booking API."""


for _name, _judges, _group in (("db", False, db_app), ("indexes", False, idx_app), ("target", False, target_app)):
    _group.info.epilog = exit_codes(_judges)
    app.add_typer(_group, name=_name)
for _name, _judges, _command in (("check", True, check), ("run", True, run), ("report", True, report),
                                 ("review", True, review), ("compare", False, compare),
                                 ("calibrate", False, calibrate), ("sweep", False, sweep),
                                 ("capacity", False, capacity), ("serve", False, serve), ("worker", False, worker),
                                 ("export", False, export)):
    app.command(_name, epilog=exit_codes(_judges))(_command)


def main() -> None:  # pragma: no cover - console script entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
