"""`localhost` is judged by the address it resolves to, and the connection uses that address (pinned): with a hosts
file mapping it elsewhere, `check --base-url`, `run --target-url` and every `--dsn` are refused naming the address,
before any connect. Schemes are case-insensitive: `HTTP://` is an http URL, never read as a DSN.

Each case that names a non-loopback address runs in a user + mount + network namespace with only loopback up and
its own /etc/hosts, under strace (tests/netns.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bookbench.config.targets import pin_loopback
from bookbench.errors import UsageError
from tests.netns import FAR_ADDRESS, run_isolated

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "data" / "scenarios_tiny.yaml"
LOCAL_DSN = "postgresql://u:hunter2@localhost:5432/app"
COMMANDS = [
    ["check", "smoke", "--base-url", "http://localhost:8000"],
    ["check", "audit", "--dsn", LOCAL_DSN],
    ["run", "--scenario-file", str(TINY), "--target-url", "http://localhost:8000", "--out", "{tmp}/r"],
    ["run", "--scenario-file", str(TINY), "--dsn", LOCAL_DSN, "--out", "{tmp}/r"],
    ["run", "--scenario-file", str(TINY), "--dsn", "host=localhost dbname=app", "--out", "{tmp}/r"],
    ["db", "status", "--dsn", LOCAL_DSN],
    ["indexes", "drop", "--dsn", LOCAL_DSN, "--yes"],
]
UPPER_CASE = ["run", "--scenario-file", str(TINY), "--target-url", f"HTTP://{FAR_ADDRESS}:8000", "--out", "{tmp}/r"]


def inside(workdir: str) -> None:
    """Run in the namespace: each command through the CLI, and the guard itself on a few targets."""
    from typer.testing import CliRunner

    from bookbench.cli.app import app

    out: dict[str, object] = {}
    for command in [*COMMANDS, UPPER_CASE]:
        result = CliRunner().invoke(app, [a.replace("{tmp}", workdir) for a in command])
        out[" ".join(command)] = {"code": result.exit_code, "out": result.output}
    pinned = {}
    for target, what in (("http://localhost:8000/x", "--base-url"), ("HTTP://user@LOCALHOST:8000", "--target-url"),
                         ("postgresql://u@localhost:5433/db?sslmode=disable", "--dsn"),
                         ("host=localhost port=5433 dbname=db", "--dsn")):
        try:
            pinned[target] = pin_loopback(target, what, allow_remote=False)
        except UsageError as exc:
            pinned[target] = f"refused: {exc}"
    out["pinned"] = pinned
    (Path(workdir) / "result.json").write_text(json.dumps(out))


def _run_inside(tmp_path: Path, hosts: str) -> dict[str, object]:
    code = f"from tests.config.test_guards_netns import inside; inside({str(tmp_path)!r})"
    run = run_isolated([sys.executable, "-c", code], tmp_path, hosts=hosts, cwd=ROOT)
    assert run.proc.returncode == 0, run.proc.stderr[-2000:]
    assert run.tried(FAR_ADDRESS) == [], run.tried(FAR_ADDRESS)
    return dict(json.loads((tmp_path / "result.json").read_text()))


@pytest.mark.integration
def test_localhost_mapped_elsewhere_is_refused_naming_the_address(tmp_path: Path) -> None:
    result = _run_inside(tmp_path, f"{FAR_ADDRESS} localhost\n")
    for command in COMMANDS:
        seen = result[" ".join(command)]
        assert isinstance(seen, dict)
        assert seen["code"] == 2, (command, seen)
        assert f"localhost resolves to {FAR_ADDRESS}" in seen["out"] and "--allow-remote" in seen["out"], seen
        assert "hunter2" not in seen["out"]
    pinned = result["pinned"]
    assert isinstance(pinned, dict)
    assert all(str(p).startswith("refused:") for p in pinned.values()), pinned
    # an upper-case scheme is an http URL refused as one, never a "DSN" with an unsupported scheme
    upper = result[" ".join(UPPER_CASE)]
    assert isinstance(upper, dict)
    assert upper["code"] == 2 and "--allow-remote" in upper["out"] and "--dsn" not in upper["out"], upper


@pytest.mark.integration
def test_a_loopback_name_is_pinned_to_the_address_judged(tmp_path: Path) -> None:
    result = _run_inside(tmp_path, "127.0.0.2 localhost\n")
    assert result["pinned"] == {
        "http://localhost:8000/x": "http://127.0.0.2:8000/x",
        "HTTP://user@LOCALHOST:8000": "http://user@127.0.0.2:8000",
        "postgresql://u@localhost:5433/db?sslmode=disable": "postgresql://u@127.0.0.2:5433/db?sslmode=disable",
        "host=localhost port=5433 dbname=db": "postgresql://127.0.0.2:5433/db",
    }


@pytest.mark.parametrize(("target", "what", "pinned"), [
    ("HTTP://127.0.0.1:8000", "--target-url", "http://127.0.0.1:8000"),
    ("Https://[::1]:8443/api", "--base-url", "https://[::1]:8443/api"),
    ("POSTGRESQL://u@127.0.0.1:5432/db", "--dsn", "postgresql://u@127.0.0.1:5432/db"),
    ("http://127.1:8000", "--target-url", "http://127.0.0.1:8000"),  # what the client would connect to
])
def test_schemes_are_case_insensitive_and_addresses_pinned(target: str, what: str, pinned: str) -> None:
    assert pin_loopback(target, what, allow_remote=False) == pinned


@pytest.mark.parametrize(("target", "what", "message"), [
    ("ftp://127.0.0.1/x", "--target-url", "--target-url ftp://127.0.0.1/x: scheme 'ftp'; expected an http://"),
    ("postgresql://u@127.0.0.1/db", "--base-url", "expected an http:// or https:// URL"),
    ("HTTP://127.0.0.1:8000", "--dsn", "expected a postgresql:// URL or libpq key=value pairs"),
])
def test_the_wrong_kind_of_target_is_named_in_the_options_terms(target: str, what: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("?", r"\?").replace(".", r"\.")):
        pin_loopback(target, what, allow_remote=False)
