"""One error model: every failure bookbench expects is a BookbenchError carrying its exit code and a message fit
for one terminal line. The CLI maps them to exit codes (and nothing else does); anything else is a bug, reported
in one line with exit 3 and its traceback written to a log file.

Exit codes: 0 done / GO, 1 a check or verdict failed (NO-GO), 2 usage (an option, a key, a file the user named),
3 the environment (database, service, Locust, disk) or an unexpected error, 130 interrupted.
"""

from __future__ import annotations

import datetime as dt
import os
import traceback
from pathlib import Path

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_ENVIRONMENT = 3
EXIT_INTERRUPTED = 130


class BookbenchError(Exception):
    """An expected failure; str(error) is the message the user reads."""

    exit_code = EXIT_ENVIRONMENT
    label = "error"


class UsageError(BookbenchError):
    """The command line, scenarios.yaml or a named file asks for something invalid; fixing the input fixes it."""

    exit_code = EXIT_USAGE
    label = "invalid input"


class ArtifactError(UsageError):
    """A run-folder file is missing, unreadable or in a format this version does not read."""

    label = "run folder"


class EnvironmentFailure(BookbenchError):
    """Something bookbench drives failed: the database, the service, Locust, the file system."""

    exit_code = EXIT_ENVIRONMENT


class DatabaseError(EnvironmentFailure):
    """The database (server start, connection, schema, dataset, index set) failed."""

    label = "database"


class ServiceError(EnvironmentFailure):
    """The service under test did not start, answered warm-up with errors, or died."""

    label = "service"


class LoadGeneratorError(EnvironmentFailure):
    """Locust (master or a worker) failed or recorded nothing."""

    label = "load generator"


def log_exception(path: Path) -> None:
    """Append the exception being handled, with its traceback, to a log file (never to the terminal)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # 0600: a traceback can name hosts, paths and queries; only its owner reads it
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "a") as log:
            log.write(f"--- {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}\n{traceback.format_exc()}\n")
    except OSError:
        pass  # the log is a courtesy; failing to write it must not hide the original error
