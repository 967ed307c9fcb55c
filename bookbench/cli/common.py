"""Options, exit codes and error handling shared by every bookbench command."""

from __future__ import annotations

import datetime as dt
import functools
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import asyncpg
import httpx
import typer
from rich.console import Console

from bookbench.db.seed import DatasetParams
from bookbench.errors import DatabaseError
from bookbench.spec.scenarios import ScenarioFileError
from bookbench.spec.targets import RemoteTargetRefused

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

# Exit codes, documented in the README: a failed check/threshold is not a crash.
EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_ENVIRONMENT = 3
EXIT_INTERRUPTED = 130

DsnOpt = Annotated[str | None, typer.Option(
    "--dsn", envvar="DATABASE_URL", show_envvar=True,
    help="PostgreSQL DSN; default: the embedded server")]
DataDirOpt = Annotated[Path | None, typer.Option(
    "--data-dir", envvar="BOOKBENCH_DATA_DIR", help="embedded cluster folder (default: a cache folder)")]
AllowRemoteOpt = Annotated[bool, typer.Option(
    "--allow-remote", help="allow load and test writes against a non-loopback host")]
KeySecretOpt = Annotated[str, typer.Option(
    "--key-secret", envvar="BOOKBENCH_KEY_SECRET", show_default=False,
    help="secret the dataset's API keys derive from (default: the built-in dataset secret)")]


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


OrgsOpt = Annotated[int, typer.Option("--orgs", min=1, help="organizations (clinics)")]
ProvidersOpt = Annotated[int, typer.Option("--providers-per-org", min=1, help="practitioners per clinic")]
ContactsOpt = Annotated[int, typer.Option("--contacts", min=1, help="patients, dealt round-robin to clinics")]
AppointmentsOpt = Annotated[int, typer.Option("--appointments", min=0, help="appointments, past and future")]
SeedOpt = Annotated[int, typer.Option("--seed", help="generator seed: same seed, same rows")]

P = ParamSpec("P")
R = TypeVar("R")


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn expected failures into one red line and a distinct exit code, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except RemoteTargetRefused as exc:
            err_console.print(f"[red]refused:[/] {exc}")
            raise typer.Exit(EXIT_USAGE) from None
        except ScenarioFileError as exc:
            err_console.print(f"[red]invalid input:[/] {exc}")
            raise typer.Exit(EXIT_USAGE) from None
        except asyncpg.PostgresError as exc:
            err_console.print(f"[red]database error:[/] {type(exc).__name__}: {exc}")
            raise typer.Exit(EXIT_ENVIRONMENT) from None
        except httpx.HTTPError as exc:
            err_console.print(f"[red]HTTP error:[/] {type(exc).__name__}: {exc}")
            raise typer.Exit(EXIT_ENVIRONMENT) from None
        except DatabaseError as exc:
            err_console.print(f"[red]error:[/] {exc}")
            raise typer.Exit(EXIT_ENVIRONMENT) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]")
            raise typer.Exit(EXIT_INTERRUPTED) from None

    return wrapper


def stop_on_signals() -> None:
    """Ctrl-C and SIGTERM both mean "stop and keep what was measured" (KeyboardInterrupt), even when started from
    a script or a background job, which inherits SIGINT as ignored."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
