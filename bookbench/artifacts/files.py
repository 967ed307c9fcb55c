"""Run-folder files: the one atomic writer, the space reserve, and JSON reads that refuse an unknown format."""

from __future__ import annotations

import contextlib
import errno
import json
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from bookbench.errors import ArtifactError, EnvironmentFailure

M = TypeVar("M", bound=BaseModel)

# Room kept in a run folder for its last manifest: released when a write meets a full disk, so that the run can
# still say how it ended. A manifest is tens of kB; 1 MiB leaves room for the other small files written meanwhile.
RESERVE_NAME = ".space-reserve"
RESERVE_BYTES = 1 << 20
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def reserve_space(folder: Path, size: int = RESERVE_BYTES) -> None:
    """Best effort: a disk with no room even for this fails the run's first real write anyway, naming it."""
    path = folder / RESERVE_NAME
    try:
        with path.open("wb") as fh:
            fh.write(b"\0" * size)  # written, not sparse: the blocks are really taken
    except OSError:
        path.unlink(missing_ok=True)


def release_space(folder: Path) -> bool:
    """Give the reserve back to the disk; True if there was one."""
    path = folder / RESERVE_NAME
    if not path.exists():
        return False
    path.unlink()
    return True


def write_json(path: Path, data: Any, reserve: Path | None = None) -> None:
    """A JSON artifact, written by `write_file` (indented by one space: a reader can diff two of them)."""
    write_file(path, json.dumps(data, indent=1, default=str), reserve)


def write_file(path: Path, data: str | bytes, reserve: Path | None = None) -> None:
    """Write atomically (`replace_atomically`), so that an interrupted run never leaves half a file, nor a temp
    file when the write fails. On a full disk the `reserve` folder's reserve is released and the write tried
    once more; a write that still fails is an environment failure naming the file."""
    try:
        replace_atomically(path, data)
    except OSError as exc:
        if not (exc.errno in DISK_FULL and reserve is not None and release_space(reserve)):
            raise _write_failure(path, exc) from None
        try:
            replace_atomically(path, data)
        except OSError as again:
            raise _write_failure(path, again) from None


def replace_atomically(path: Path, data: str | bytes) -> None:
    """The one atomic write of a run-folder file: `<name>.tmp` beside it, then a rename over it, so a reader (the
    progress display, a report re-rendered meanwhile, the next command after a kill) sees the old file or the new
    one, never half of one. On failure the temp file is removed and the OSError raised for the caller to name.

    No fsync, on purpose: the rename makes a write whole against a killed process, which is what run folders
    meet; against a power cut it does not, but a run cut by one is re-run anyway, and an fsync per write would
    put disk-flush latency into the once-a-second progress file and the manifest saves during the load."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data)
        tmp.replace(path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def append_text(path: Path, text: str) -> None:
    """Append to a line-per-record file (the load side's bookings, attempts, dropped arrivals): appending, not
    replacing, because those grow once a second for the whole run. Raises OSError for the caller to name."""
    with path.open("a") as fh:
        fh.write(text)


def _write_failure(path: Path, exc: OSError) -> EnvironmentFailure:
    what = exc.strerror or type(exc).__name__
    if exc.errno in DISK_FULL:
        return EnvironmentFailure(f"disk full writing {path} ({what})")
    return EnvironmentFailure(f"cannot write {path} ({what})")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{path} does not exist") from None
    except OSError as exc:
        raise ArtifactError(f"cannot read {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path} is not valid JSON (line {exc.lineno}): {exc.msg}") from None


def check_version(path: Path, data: Any, supported: int) -> dict[str, Any]:
    """The file's top-level mapping, if it carries the format version this code reads."""
    if not isinstance(data, dict):
        raise ArtifactError(f"{path}: expected a JSON object at the top level")
    found = data.get("format_version")
    if found != supported:
        raise ArtifactError(f"{path} has format_version {found!r}; this bookbench reads version {supported} "
                            "(re-run the command that wrote it, or use the bookbench version that did)")
    return data


def validate(where: str, data: Any, model: type[M]) -> M:
    """`data` as `model`, or an ArtifactError naming `where` (a file) and the first bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ArtifactError(f"{where}: {field}: {first['msg']} ({exc.error_count()} problem(s))") from None


def read_model(path: Path, model: type[M], supported: int) -> M:
    return validate(str(path), check_version(path, read_json(path), supported), model)


def write_model(path: Path, model: BaseModel, reserve: Path | None = None) -> None:
    write_json(path, model.model_dump(mode="json"), reserve)
