"""Reading a YAML file a user wrote (scenarios.yaml, a target profile): a mapping, or one error line with the
file, line and column of the problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bookbench.errors import UsageError


def read_mapping(path: Path, error: type[UsageError]) -> dict[str, Any]:
    """The file's top-level mapping; `error` (a UsageError) naming file:line:col when it is not valid YAML."""
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror}") from exc
    except yaml.MarkedYAMLError as exc:
        # the file, line and column, and what is wrong there; PyYAML's own text names "<unicode string>"
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise error(f"{where}: not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise error(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise error(f"{path}: the top level must be a mapping")
    return raw


def key_marks(path: Path) -> dict[tuple[str, ...], tuple[int, int]]:
    """Key path -> (line, column) of every key and list item in a valid YAML file, so that a validation error can
    say where to look."""
    node = yaml.compose(path.read_text())
    return _marks(node) if node is not None else {}


def _marks(node: yaml.Node, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], tuple[int, int]]:
    out: dict[tuple[str, ...], tuple[int, int]] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            here = (*prefix, str(key.value))
            out[here] = (key.start_mark.line + 1, key.start_mark.column + 1)
            out.update(_marks(value, here))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            here = (*prefix, str(i))
            out[here] = (item.start_mark.line + 1, item.start_mark.column + 1)
            out.update(_marks(item, here))
    return out
