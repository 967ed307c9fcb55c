"""steps/rate-<r>.yaml in a capacity folder: the scenarios file each step of the search ran with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bookbench.artifacts.files import write_file


def write_step(folder: Path, rate: float, scenarios: dict[str, Any]) -> Path:
    """Key order kept as built (the user's file first, the step's scenario after), so the file diffs against theirs."""
    path = folder / "steps" / f"rate-{rate:g}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file(path, yaml.safe_dump(scenarios, sort_keys=False))
    return path
