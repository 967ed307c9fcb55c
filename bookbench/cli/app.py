"""The `bookbench` command line: the command tree. Each command lives in its own module, imported only when that
command runs (or when --help lists them all): importing every command module took ~0.4 CPU-s, paid again by each
of the many short `bookbench` processes a run, a check or the test suite starts."""

from __future__ import annotations

import importlib
from typing import Annotated, Any

import typer
import typer.core
import typer.main

# typer's click classes are its own since 0.26 (a vendored copy, private): only typer's names are used below
Command = typer.core.TyperCommand | typer.core.TyperGroup

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


# the command tree in --help's order: name -> (module under bookbench/cli, its attribute, whether it judges). An
# attribute that is a Typer is a command group, anything else the function of one command.
COMMANDS: dict[str, tuple[str, str, bool]] = {
    "check": ("check", "check", True), "run": ("run", "run", True), "report": ("report", "report", True),
    "review": ("report", "review", True), "compare": ("compare", "compare", False),
    "calibrate": ("compare", "calibrate", False), "sweep": ("sweep", "sweep", False),
    "capacity": ("capacity", "capacity", False), "serve": ("serve", "serve", False),
    "worker": ("worker", "worker", False), "export": ("export", "export", False),
    "db": ("db", "db_app", False), "indexes": ("indexes", "idx_app", False), "target": ("target", "target_app", False),
}


def load_command(name: str) -> Command:
    """Import one command's module and build its click command, exactly as `add_typer` / `app.command` on the root
    would have (through typer's public `get_command`, on a one-entry app without shell completion)."""
    module, attribute, judges = COMMANDS[name]
    target = getattr(importlib.import_module(f"bookbench.cli.{module}"), attribute)
    holder = typer.Typer(add_completion=False)
    if isinstance(target, typer.Typer):
        holder.add_typer(target, name=name, epilog=exit_codes(judges))
        group = typer.main.get_command(holder)
        assert isinstance(group, typer.core.TyperGroup)
        command = group.commands[name]
    else:
        holder.command(name, epilog=exit_codes(judges))(target)
        command = typer.main.get_command(holder)
    assert isinstance(command, Command)
    return command


class _LazyGroup(typer.core.TyperGroup):
    """The root group: it knows the commands' names and builds a command the first time it is asked for it."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            self.commands[cmd_name] = load_command(cmd_name)
        return self.commands.get(cmd_name)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        # typer suggests a near name ("Did you mean 'check'?") from the commands built so far: a name that is none
        # of them builds them all first (only on that error path)
        if args and args[0] not in COMMANDS and not args[0].startswith("-"):
            for name in COMMANDS:
                self.get_command(ctx, name)
        return super().resolve_command(ctx, args)


app = typer.Typer(cls=_LazyGroup, no_args_is_help=True, pretty_exceptions_enable=False,
                  epilog=exit_codes(judges=True))


@app.callback()
def _root(version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True, help="print the version and exit")] = False) -> None:
    """Load tests, index benchmarks and pre-deployment checks for a clinic-booking API."""


def main() -> None:  # pragma: no cover - console script entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
