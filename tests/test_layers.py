"""The package's layering, held: every `bookbench.*` import (module level or inside a function) goes from a stage to
one below it, so the order in the README's "Where each stage lives" is a fact, not a wish."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.budget import budget

PACKAGE = Path(__file__).resolve().parents[1] / "bookbench"

# a stage may import only stages of a lower rank (the README's order, top first:
# cli -> pipeline -> load | db | checks | report -> analysis -> artifacts -> config -> errors)
RANK = {
    "errors": 0,
    "config": 1, "tables": 1, "net": 1,  # net: the one maker of HTTP clients (no redirects, one TLS context)
    "artifacts": 2,
    "analysis": 3,
    "report": 4, "db": 4,
    "target": 5,  # the client layer: reads a pool of ids from a database only when asked (lazy import of db)
    "load": 6, "checks": 6,
    "pipeline": 7,
    "cli": 8, "fakes": 8,  # fakes: stand-in providers and targets, started as processes by tests and runs
    "__main__": 9,
}
# what the design forbids outright, even where ranks would allow it
FORBIDDEN = {("load", "db"), ("load", "pipeline"), ("analysis", "load"), ("report", "load"), ("report", "pipeline")}


def _stage(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py") if len(rel.parts) > 1 or rel.stem != "__init__" else "__init__"


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported stage) of every import of another bookbench stage in `path`."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] != "bookbench":
                continue
            stages = [parts[1]] if len(parts) > 1 else [alias.name for alias in node.names]
            found += [(node.lineno, s) for s in stages]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name.split(".")[1]) for a in node.names if a.name.startswith("bookbench.")]
    return found


def _violations() -> list[str]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        me = _stage(path)
        if me == "__init__":
            continue
        for line, other in _imports(path):
            if other == me:
                continue
            where = f"{path.relative_to(PACKAGE.parent)}:{line} imports bookbench.{other}"
            if me not in RANK or other not in RANK:
                out.append(f"{where}: a stage missing from RANK (add it where it belongs)")
            elif RANK[other] >= RANK[me]:
                out.append(f"{where}: {other} is not below {me}")
            elif (me, other) in FORBIDDEN:
                out.append(f"{where}: {me} never imports {other}")
    return out


def test_every_import_goes_down_the_stages() -> None:
    assert _violations() == []


def test_every_stage_has_a_rank() -> None:
    stages = {_stage(p) for p in PACKAGE.rglob("*.py")} - {"__init__"}
    assert stages <= set(RANK), stages - set(RANK)


@pytest.mark.parametrize(("source", "expected"), [
    ("from bookbench.pipeline import run\n", "pipeline is not below analysis"),
    ("def f():\n    from bookbench.cli.common import console\n", "cli is not below analysis"),
])
def test_an_upward_import_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str,
                                    expected: str) -> None:
    """Negative control: the checker does see an import against the order, at module level or inside a function."""
    fake = tmp_path / "bookbench"
    (fake / "analysis").mkdir(parents=True)
    (fake / "analysis" / "bad.py").write_text(source)
    monkeypatch.setattr(f"{__name__}.PACKAGE", fake)
    problems = _violations()
    assert len(problems) == 1 and "bookbench/analysis/bad.py" in problems[0], problems
    assert expected in problems[0], problems


# -- one maker of HTTP clients ---------------------------------------------------------------------------------------
_HTTPX_MAKERS = {"Client", "AsyncClient", "get", "post", "put", "patch", "delete", "head", "options", "request",
                 "stream"}


def _httpx_calls(root: Path) -> list[str]:
    """`file:line` of every call of httpx.Client/AsyncClient/get/... outside bookbench/net.py."""
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.relative_to(root).as_posix() == "net.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "httpx"
                    and node.func.attr in _HTTPX_MAKERS):
                found.append(f"{path.relative_to(root)}:{node.lineno}")
    return found


def test_every_http_client_is_made_by_net(tmp_path: Path) -> None:
    """bookbench.net makes every HTTP client: none follows a redirect off loopback, and none pays for a TLS context
    of its own (net's docstring has the figures). A client made anywhere else is caught (the control below)."""
    assert _httpx_calls(PACKAGE) == []
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "pipeline" / "poll.py").write_text("import httpx\n\ndef f():\n    return httpx.get('http://x')\n")
    assert _httpx_calls(tmp_path) == [str(Path("pipeline") / "poll.py") + ":4"]


@pytest.mark.parametrize(("module", "kept_out"), [
    # a dispatcher serves no HTTP: the web framework is ~0.2 CPU-s of every dispatcher's start
    ("target_service.notify.dispatcher", "fastapi"),
    # the load processes: pyarrow would import pandas on its first array (bookbench/load/locustfile.py)
    ("bookbench.load.locustfile", "pandas"),
    # the fake providers run beside the service they fake for: Starlette, not FastAPI (~0.3 CPU-s of every start)
    ("bookbench.fakes.providers", "fastapi"),
    ("bookbench.fakes.providers", "aiohttp"),
])
def test_processes_that_start_per_run_import_only_what_they_use(module: str, kept_out: str) -> None:
    code = (f"import sys, pyarrow as pa; import {module}; pa.array([1.0]); "
            f"sys.exit(f'{kept_out} imported' if {kept_out!r} in sys.modules else 0)")
    # the locustfile imported as Locust started by hand does (no run config: scenarios.yaml's mix)
    env = {k: v for k, v in os.environ.items() if k != "BOOKBENCH_RUN_CONFIG"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=budget(120))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_command_line_imports_only_the_command_that_runs() -> None:
    """bookbench/cli/app.py loads a command's module when that command runs: all of them, with numpy, pydantic and
    httpx under them, were ~0.4 CPU-s of every `bookbench` process (a run starts several, the test suite ~150)."""
    code = ("import sys; from bookbench.cli.app import app; app(['db', '--help'], standalone_mode=False); "
            "print(' '.join(m for m in sys.modules if m.startswith('bookbench.cli.') or m in ('numpy', 'pydantic')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=budget(120))
    assert done.returncode == 0, done.stdout + done.stderr
    loaded = set(done.stdout.splitlines()[-1].split())
    assert "bookbench.cli.db" in loaded, loaded  # the command asked for
    assert not loaded & {"bookbench.cli.run", "bookbench.cli.check", "bookbench.cli.compare", "numpy"}, loaded


def test_writing_and_reading_notification_rows_leaves_pandas_unimported(tmp_path: Path) -> None:
    """`bookbench run` writes each scenario's outbox rows and analyses its acknowledgements through Arrow's JSON
    reader (bookbench/artifacts/json_rows.py): pa.array would import pandas, ~0.3 CPU-s of every such run."""
    code = f"""
import sys
from pathlib import Path
from bookbench.artifacts.notifications import OutboxWriter
from bookbench.analysis.notifications import _ack_batch
row = dict(appointment_id=1, channel="sms", kind="confirm", dedup_key="k", created_at=1.0, status="sent",
           attempts=1, sent_at=2.0, conflict=False, last_error=None)
with OutboxWriter(Path({str(tmp_path / "o.parquet")!r})) as writer:
    writer.write([row])
assert _ack_batch([(1, 2.0), (2, None)], 0, Path("acked")).num_rows == 2
sys.exit("pandas imported" if "pandas" in sys.modules else 0)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=budget(120))
    assert done.returncode == 0, done.stdout + done.stderr
