"""Versioned JSON files: atomic writes, and reads that refuse a format this bookbench does not know."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from bookbench.errors import ArtifactError

M = TypeVar("M", bound=BaseModel)


def write_json(path: Path, data: Any) -> None:
    """Write atomically (temp file, then rename), so that an interrupted run never leaves half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    tmp.replace(path)


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


def read_model(path: Path, model: type[M], supported: int) -> M:
    data = check_version(path, read_json(path), supported)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ArtifactError(f"{path}: {where}: {first['msg']} ({exc.error_count()} problem(s))") from None


def write_model(path: Path, model: BaseModel) -> None:
    write_json(path, model.model_dump(mode="json"))
