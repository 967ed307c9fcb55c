"""The run's manifest says why it measures no notification: the reason every page shows for the folded line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bookbench.pipeline.run import RunOptions, new_manifest, plan

TINY = Path(__file__).resolve().parents[1] / "data" / "scenarios_tiny.yaml"


@pytest.mark.parametrize(("options", "reason"), [
    ({}, None),
    ({"notifications": False, "argv": ["bookbench", "compare", "--quick"]},
     "not measured: `bookbench compare` turns notifications off"),
    ({"target_url": "http://127.0.0.1:8000"}, "not measured: a --target-url run"),
    ({"notifications": False, "argv": ["bookbench", "run", "--no-notifications"]},
     "not measured: the run was started with --no-notifications"),
])
def test_the_manifest_records_why_notifications_are_off(options: dict[str, object], reason: str | None) -> None:
    off = new_manifest(plan(RunOptions(scenarios_path=TINY, **options)), "r").notifications_off  # type: ignore[arg-type]
    assert off == reason if reason is None else str(off).startswith(reason)
