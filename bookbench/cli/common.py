"""Options, exit codes and error handling shared by every bookbench command."""

from __future__ import annotations

import datetime as dt
import functools
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from bookbench.config.dataset import DatasetParams
from bookbench.config.dsn import mask_dsn, resolve_hosts, to_url
from bookbench.config.targets import pin_loopback
from bookbench.errors import (
    EXIT_ENVIRONMENT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    BookbenchError,
    UsageError,
    log_exception,
)

# soft_wrap: a long line is left whole for the terminal (or a CI log) to wrap, never cut into two at 80 columns
console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)  # one line per error, never wrapped

__all__ = ["EXIT_ENVIRONMENT", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE"]


def crash_log() -> Path:
    """Where a traceback goes when an unexpected error happens outside a run folder: this user's state folder
    ($XDG_STATE_HOME or ~/.local/state), never a file in /tmp that every user of the machine shares (a
    traceback can name hosts, paths and queries). A per-user folder under the temp dir when home is unusable."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    for folder in (Path(state) / "bookbench", Path(tempfile.gettempdir()) / f"bookbench-{os.getuid()}"):
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            if folder.stat().st_uid == os.getuid() and os.access(folder, os.W_OK):
                return folder / "errors.log"
        except OSError:
            continue
    return Path(os.devnull)

def _dsn_url(value: str | None) -> str | None:
    """A libpq key=value DSN becomes the URL asyncpg takes; a DSN that cannot be read is a usage error."""
    if not value:
        return None
    try:
        return to_url(value)
    except UsageError as exc:
        raise typer.BadParameter(str(exc).removeprefix("--dsn: ")) from None


DsnOpt = Annotated[str | None, typer.Option(
    "--dsn", envvar="DATABASE_URL", show_envvar=True, callback=_dsn_url,
    help="PostgreSQL DSN, postgresql://... or libpq key=value pairs; default: the embedded server")]
DataDirOpt = Annotated[Path | None, typer.Option(
    "--data-dir", envvar="BOOKBENCH_DATA_DIR", help="embedded cluster folder (default: a cache folder)")]
AllowRemoteOpt = Annotated[bool, typer.Option(
    "--allow-remote", help="allow load and test writes against a non-loopback host")]
YesOpt = Annotated[bool, typer.Option(
    "--yes", help="change a database given with --dsn without asking (the embedded cluster never asks)")]
def _index_dir(value: Path | None) -> Path | None:
    """--index-dir: a folder of the user's own index set files, seen by every stage of this command."""
    if value is None:
        return None
    if not value.is_dir():
        raise typer.BadParameter(f"{value} is not a folder (it holds <set>.sql files of CREATE INDEX CONCURRENTLY "
                                 "IF NOT EXISTS statements)")
    from bookbench.db.indexes import INDEX_DIR_ENV

    os.environ[INDEX_DIR_ENV] = str(value.resolve())
    return value


IndexDirOpt = Annotated[Path | None, typer.Option(
    "--index-dir", envvar="BOOKBENCH_INDEX_DIR", callback=_index_dir,
    help="a folder of your own index sets (<name>.sql, CREATE INDEX CONCURRENTLY IF NOT EXISTS ...), named like "
    "the built-in ones")]
TargetOpt = Annotated[str | None, typer.Option(
    "--target", help="target profile: reference-rest, reference-vapi, postgrest or a YAML file (default: the "
    "reference service's profile for task_mix.protocol); see `bookbench target list`")]
TargetUrlOpt = Annotated[str | None, typer.Option(
    "--target-url", help="load this running deployment instead of starting the reference service")]
KeySecretOpt = Annotated[str, typer.Option(
    "--key-secret", envvar="BOOKBENCH_KEY_SECRET", show_default=False,
    help="secret the dataset's API keys derive from (default: the built-in dataset secret)")]


def guard_dsn(dsn: str | None, allow_remote: bool) -> str | None:
    """The gate every command with --dsn passes before it connects: None (the embedded cluster) as it is; any
    other database refused unless every address it would use is loopback or --allow-remote, and returned pinned to
    the addresses judged (spec.targets.pin_loopback)."""
    return pin_loopback(dsn, "--dsn", allow_remote) if dsn else None


def _in_ci() -> bool:
    return any(os.environ.get(name) for name in ("CI", "GITHUB_ACTIONS", "GITLAB_CI", "BUILDKITE", "JENKINS_URL"))


def confirm_destructive(dsn: str | None, action: str, yes: bool) -> None:
    """A command about to change or delete what a database given with --dsn holds names that database and goes on
    only with --yes, or a "y" typed at a terminal; in CI or without a terminal it refuses (exit 2) naming the
    flag. The embedded cluster (no --dsn) is bookbench's own and is never asked about."""
    if not dsn or yes:
        return
    from urllib.parse import unquote, urlsplit

    database = unquote(urlsplit(dsn).path.lstrip("/")) or "(the user's default)"
    hosts = ", ".join(resolve_hosts(dsn) or ["?"])
    what = f"{action} in database {database!r} on {hosts} ({mask_dsn(dsn)}), which bookbench did not create"
    if _in_ci() or not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError(f"{what}; pass --yes to go ahead")
    if not typer.confirm(f"{what}. Go ahead?", default=False):
        raise UsageError(f"{what}: not confirmed; nothing changed")


def dataset_options(
    orgs: int, providers_per_org: int, contacts: int, appointments: int, seed: int, key_secret: str,
    anchor: dt.datetime | None = None,
) -> DatasetParams:
    kwargs: dict[str, Any] = {"orgs": orgs, "providers_per_org": providers_per_org, "contacts": contacts,
                              "appointments": appointments, "seed": seed, "key_secret": key_secret}
    if anchor is not None:
        kwargs["anchor"] = anchor.date()
    params = DatasetParams(**kwargs)
    params.validate()
    return params


# the dataset knobs; `run` and friends take them optional (None: scenarios.yaml's dataset), `db seed` plain
DATASET_HELP = {"orgs": "organizations (clinics)", "providers_per_org": "practitioners per clinic",
                "contacts": "patients, dealt round-robin to clinics", "appointments": "appointments, past and future",
                "seed": "generator seed: same seed, same rows"}
OrgsOpt = Annotated[int, typer.Option("--orgs", min=1, help=DATASET_HELP["orgs"])]
ProvidersOpt = Annotated[int, typer.Option("--providers-per-org", min=1, help=DATASET_HELP["providers_per_org"])]
ContactsOpt = Annotated[int, typer.Option("--contacts", min=1, help=DATASET_HELP["contacts"])]
AppointmentsOpt = Annotated[int, typer.Option("--appointments", min=0, help=DATASET_HELP["appointments"])]
SeedOpt = Annotated[int, typer.Option("--seed", help=DATASET_HELP["seed"])]
_FROM_FILE = " (default: scenarios.yaml's dataset)"
MaybeOrgsOpt = Annotated[int | None, typer.Option("--orgs", min=1, help=DATASET_HELP["orgs"] + _FROM_FILE)]
MaybeProvidersOpt = Annotated[int | None, typer.Option(
    "--providers-per-org", min=1, help=DATASET_HELP["providers_per_org"] + _FROM_FILE)]
MaybeContactsOpt = Annotated[int | None, typer.Option("--contacts", min=1, help=DATASET_HELP["contacts"] + _FROM_FILE)]
MaybeAppointmentsOpt = Annotated[int | None, typer.Option(
    "--appointments", min=0, help=DATASET_HELP["appointments"] + _FROM_FILE)]
MaybeSeedOpt = Annotated[int | None, typer.Option("--seed", help=DATASET_HELP["seed"] + _FROM_FILE)]

P = ParamSpec("P")
R = TypeVar("R")


def split_list(text: str | None) -> list[str]:
    """A comma-separated option as a list, blanks dropped: "a, b,,c" -> [a, b, c]."""
    return [s.strip() for s in (text or "").split(",") if s.strip()]


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """The one place that turns failures into exit codes: a BookbenchError prints one red line and exits with
    its code; database and network errors that escaped a stage exit 3; anything else is a bug, printed as one
    line with exit 3 and its traceback appended to crash_log(). Never a traceback on the terminal, never exit 1
    (that code means NO-GO)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        import asyncpg
        import httpx

        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except BookbenchError as exc:
            err_console.print(f"[red]{exc.label}:[/] {escape(str(exc))}")
            raise typer.Exit(exc.exit_code) from None
        except (asyncpg.PostgresError, httpx.HTTPError, OSError) as exc:
            err_console.print(f"[red]error:[/] {type(exc).__name__}: {escape(str(exc))}")
            raise typer.Exit(EXIT_ENVIRONMENT) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as exc:
            log = crash_log()
            log_exception(log)
            err_console.print(f"[red]unexpected error:[/] {type(exc).__name__}: {escape(str(exc))} "
                              f"(traceback in {log})")
            raise typer.Exit(EXIT_ENVIRONMENT) from None

    return wrapper


def stop_on_signals() -> None:
    """Ctrl-C and SIGTERM both mean "stop and keep what was measured": the first raises KeyboardInterrupt, later
    ones cannot cut the clean-up short (bookbench.pipeline.interrupts)."""
    from bookbench.pipeline import interrupts

    interrupts.install()


def mb(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB"
