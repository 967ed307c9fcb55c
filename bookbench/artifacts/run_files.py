"""Small run-folder files: checks.json, pg_stat snapshots, acknowledged booking ids and Locust's own JSON totals
(the load side writes the ids; the pipeline reads them back). The per-scenario Locust config is run_config's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bookbench.artifacts.files import check_version, read_json, write_json
from bookbench.errors import ArtifactError

CHECKS_FORMAT_VERSION = 1


def write_checks(path: Path, results: list[dict[str, Any]]) -> None:
    write_json(path, {"format_version": CHECKS_FORMAT_VERSION, "results": results})


def read_checks(path: Path) -> list[dict[str, Any]] | None:
    """The recorded check results, or None when the run skipped the checks."""
    if not path.exists():
        return None
    return list(check_version(path, read_json(path), CHECKS_FORMAT_VERSION)["results"])


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """A snapshot of rows (pg_stat_user_indexes), unversioned: it mirrors the catalog view."""
    write_json(path, rows)


def read_rows(path: Path) -> list[dict[str, Any]]:
    return list(read_json(path))


def read_acknowledged_times(path: Path) -> dict[int, float | None]:
    """Acknowledged bookings: appointment id -> when the acknowledgement arrived (epoch s). One line per booking,
    "id ts"; files from before the time was recorded hold only "id" (time None). An id written twice: its last."""
    return dict(iter_acknowledged_times(path))


def iter_acknowledged_times(path: Path) -> Iterator[tuple[int, float | None]]:
    """read_acknowledged_times()'s pairs in the file's order, a line at a time (a soak's file is read whole by no
    one: the analysis streams it into its engine)."""
    if not path.exists():
        return
    with path.open() as fh:
        for n, line in enumerate(fh, 1):
            parts = line.split()
            # ids of another API may be text (references, UUIDs): the reference schema's reconciliation reads
            # integers
            if parts and parts[0].isdigit():
                try:
                    yield int(parts[0]), float(parts[1]) if len(parts) > 1 else None
                except ValueError:
                    raise ArtifactError(f"{path} line {n}: the time {parts[1]!r} is not a number") from None


def read_dropped(path: Path) -> list[float]:
    """Open model: intended send times of the arrivals dropped for want of free capacity."""
    if not path.exists():
        return []
    return [float(x) for x in path.read_text().split()]


def read_acknowledged_text(path: Path) -> list[str]:
    """Acknowledged ids as the API answered them (text: another API's ids may be references or UUIDs)."""
    if not path.exists():
        return []
    return [line.split()[0] for line in path.read_text().splitlines() if line.split()]


def read_acknowledged(path: Path) -> list[int]:
    return list(read_acknowledged_times(path))


def read_attempts(path: Path) -> list[tuple[int, int, str]]:
    """Booking attempts (contact id, provider id, start as ISO text); a torn last line of a killed run is skipped."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit():
            out.append((int(parts[0]), int(parts[1]), parts[2]))
    return out


def locust_request_count(stats_json: Path) -> int | None:
    """Locust's own final total (its --json-file, one entry per endpoint), for cross-checking our samples."""
    try:
        entries = json.loads(stats_json.read_text())
    except (OSError, ValueError):
        return None
    return sum(int(e["num_requests"]) for e in entries)

