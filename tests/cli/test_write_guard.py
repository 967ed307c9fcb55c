"""Every command that takes --dsn passes one guard before it connects (a non-loopback database needs
--allow-remote), and the ones that change a database's contents name a database given with --dsn and need --yes.

The remote cases run in a network namespace with only loopback up, under strace (tests/netns.py): "refused" is
shown by the exit code and by no connect() to the database's address, never by a timeout."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest
from typer.testing import CliRunner

from bookbench.cli.app import app
from bookbench.db import indexes as index_sets
from bookbench.db.schema import apply_schema
from tests.conftest import run_sql
from tests.netns import FAR_ADDRESS, run_isolated

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "data" / "scenarios_tiny.yaml"
REMOTE = f"postgresql://admin:hunter2@{FAR_ADDRESS}:5432/prod"
COMMANDS = [
    ["db", "seed", "--force"], ["db", "status"], ["indexes", "apply", "seed"], ["indexes", "drop"],
    ["indexes", "status"], ["serve", "--dispatchers", "0"], ["check", "audit"],
    ["check", "smoke", "--base-url", "http://127.0.0.1:9"],
    ["run", "--scenario-file", str(TINY), "--out", "{tmp}/results"],
    ["compare", "--sets", "none,seed", "--scenario-file", str(TINY), "--out", "{tmp}/results"],
]


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output  # stdout and stderr, as the terminal shows them


def inside(workdir: str) -> None:
    """Run in the namespace: every command with the remote DSN; exit code and output of each to result.json."""
    results = []
    for command in COMMANDS:
        args = [a.replace("{tmp}", workdir) for a in command]
        code, out = invoke(*args, "--dsn", REMOTE)
        results.append({"command": " ".join(command[:2]), "code": code, "out": out})
    (Path(workdir) / "result.json").write_text(json.dumps(results))


def test_every_command_with_a_remote_dsn_is_refused_before_it_connects(tmp_path: Path) -> None:
    code = f"from tests.cli.test_write_guard import inside; inside({str(tmp_path)!r})"
    run = run_isolated([sys.executable, "-c", code], tmp_path, cwd=ROOT)
    assert run.proc.returncode == 0, run.proc.stderr[-2000:]
    assert run.tried(FAR_ADDRESS) == [], run.tried(FAR_ADDRESS)
    for result in json.loads((tmp_path / "result.json").read_text()):
        assert result["code"] == 2, result
        assert "--allow-remote" in result["out"] and FAR_ADDRESS in result["out"], result
        assert "hunter2" not in result["out"], result


@pytest.fixture
def indexed_db(new_db: Callable[[], str]) -> str:
    """A database of the session's cluster, given as --dsn: not the embedded default, so bookbench asks."""
    dsn = new_db()
    run_sql(dsn, apply_schema)
    run_sql(dsn, lambda conn: index_sets.apply(conn, "seed"))
    return dsn


def _index_names(dsn: str) -> set[str]:
    async def names(conn: asyncpg.Connection) -> set[str]:
        return {row.name for row in await index_sets.status(conn)}

    return run_sql(dsn, names)


@pytest.mark.integration
def test_indexes_drop_on_a_given_database_needs_yes(indexed_db: str) -> None:
    before = _index_names(indexed_db)
    assert before
    code, out = invoke("indexes", "drop", "--dsn", indexed_db)
    database = indexed_db.rsplit("/", 1)[1]
    assert code == 2 and "--yes" in out and database in out and "127.0.0.1" in out, out
    assert _index_names(indexed_db) == before  # nothing dropped
    code, out = invoke("indexes", "drop", "--dsn", indexed_db, "--yes")
    assert code == 0, out
    assert _index_names(indexed_db) == set()


@pytest.mark.integration
def test_seed_and_index_apply_on_a_given_database_need_yes(indexed_db: str) -> None:
    tiny = ["--orgs", "1", "--providers-per-org", "1", "--contacts", "5", "--appointments", "5"]
    for args in (["db", "seed", "--force", *tiny], ["db", "seed", *tiny], ["indexes", "apply", "none"],
                 ["indexes", "apply", "recommended", "--keep-others"]):
        code, out = invoke(*args, "--dsn", indexed_db)
        assert code == 2 and "--yes" in out and "bookbench did not create" in out, (args, out)
    code, out = invoke("db", "seed", *tiny, "--dsn", indexed_db, "--yes")
    assert code == 0, out
    # read-only commands never ask
    code, out = invoke("indexes", "status", "--dsn", indexed_db)
    assert code == 0, out
