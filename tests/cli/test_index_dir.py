"""--index-dir: a team's own index sets, applied and reported like the built-in ones."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.budget import budget
from tests.conftest import fetch, seeded

pytestmark = [pytest.mark.integration]


def _bookbench(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "BOOKBENCH_INDEX_DIR"}
    return subprocess.run([sys.executable, "-m", "bookbench", *args],
                          capture_output=True, text=True, timeout=budget(120),
                          env=env)


def test_an_index_set_from_the_users_folder_is_applied_and_named(new_db: Callable[[], str], tmp_path: Path) -> None:
    dsn = seeded(new_db())
    (tmp_path / "ours.sql").write_text(
        "-- our deployment's booking index\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_ours_provider_start\n"
        "    ON appointments (provider_id, scheduled_at);\n")
    done = _bookbench("indexes", "apply", "ours", "--index-dir", str(tmp_path), "--dsn", dsn, "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "created idx_ours_provider_start" in done.stdout
    assert fetch(dsn, "SELECT 1 FROM pg_indexes WHERE indexname = 'idx_ours_provider_start'")
    status = _bookbench("indexes", "status", "--index-dir", str(tmp_path), "--dsn", dsn)
    assert "idx_ours_provider_start" in status.stdout and "ours" in status.stdout
    # without the folder the set is unknown, and the message lists what is available
    unknown = _bookbench("indexes", "apply", "ours", "--dsn", dsn, "--yes")
    assert unknown.returncode == 2 and "unknown index set 'ours'" in unknown.stderr + unknown.stdout
    missing = _bookbench("indexes", "apply", "ours", "--index-dir", str(tmp_path / "nope"), "--dsn", dsn, "--yes")
    assert missing.returncode == 2 and "is not a folder" in missing.stderr + missing.stdout
