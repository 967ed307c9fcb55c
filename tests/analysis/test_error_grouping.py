"""Failures grouped by their message with ids, numbers and addresses taken out, one real example kept; and a request
that got no HTTP answer (status 0) records the client-side error that stopped it, never an empty text."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest

from bookbench.analysis import error_groups
from bookbench.analysis import summarize as analysis
from bookbench.db.embedded import free_port
from bookbench.pipeline.locust_proc import LOCUSTFILE
from tests.budget import budget
from tests.conftest import SMALL


def samples(*failures: tuple[int, str], successes: int = 3) -> pd.DataFrame:
    """A samples frame: one failed request per (status, error), and `successes` answered ones."""
    rows = [(status, 0, error) for status, error in failures] + [(200, 1, "")] * successes
    df = pd.DataFrame({"ts": [100.0 + i for i in range(len(rows))], "latency_ms": 5.0, "name": "op",
                       "method": "GET", "status": [r[0] for r in rows], "ok": [r[1] for r in rows],
                       "error": [r[2] for r in rows], "bytes": 1, "users": 1, "worker": "local", "intended": None})
    df["end"] = df["ts"] + df["latency_ms"] / 1000
    return df


def not_found(appointment: int) -> tuple[int, str]:
    return 404, f'HTTP 404: {{"error":"appointment_not_found","detail":"appointment {appointment} not found"}}'


@pytest.mark.parametrize(("message", "pattern"), [
    ("HTTP 404: appointment 123 not found", "HTTP 404: appointment <n> not found"),
    ("connection refused (127.0.0.1:5432)", "connection refused (<ip>:<n>)"),
    ("OSError: [Errno 111] Connection refused", "OSError: [Errno 111] Connection refused"),
    ("<Proxy at 0x7f3dc030ad70> request 9f8e7d6c5b4a", "<Proxy at <hex>> request <hex>"),
    ("call 123e4567-e89b-12d3-a456-426614174000 took 1.5 ms", "call <uuid> took <n> ms"),
    ("utf8 and sha256 are words, not ids", "utf8 and sha256 are words, not ids"),
])
def test_variable_parts_become_placeholders(message: str, pattern: str) -> None:
    assert error_groups.normalise_error(message)[0] == pattern


def test_errors_group_by_pattern_with_one_example_and_status_0_is_named() -> None:
    df = samples(not_found(123), not_found(456), not_found(456),
                 (0, "ConnectionRefusedError: [Errno 111] Connection refused"),
                 (503, "HTTP 503: database_unavailable"),
                 (0, ""))  # a samples file from before status-0 failures were named
    summary = analysis.analyse_scenario(df, 0, None)
    pattern = 'HTTP 404: {"error":"appointment_not_found","detail":"appointment <n> not found"}'
    assert summary.errors_by_message == {
        pattern: 3,
        "ConnectionRefusedError: [Errno 111] Connection refused": 1,
        "HTTP 503: database_unavailable": 1,
        "no HTTP response (client-side error, not recorded)": 1,
    }
    # the most frequent message of the group is its example; groups without variable parts need none
    assert summary.error_examples == {pattern: not_found(456)[1]}


def test_only_the_largest_groups_are_kept() -> None:
    df = samples(*[(500, f"HTTP 500: kind {chr(97 + i)}") for i in range(5)], (409, "HTTP 409: taken"),
                 (409, "HTTP 409: taken"))
    groups = error_groups.errors_by_message(df[df["ok"] == 0], top=2).counts
    assert groups == {"HTTP 409: taken": 2, "HTTP 500: kind a": 1}


@contextmanager
def closes_every_connection() -> Iterator[int]:
    """A port whose server reads the request and hangs up without an answer."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:  # the listening socket was closed: done
                return
            with conn:
                conn.recv(65536)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        server.close()
        thread.join(5)


def run_locust(tmp_path: Path, protocol: str, port: int) -> pd.DataFrame:
    """A few seconds of the real locustfile, one caller, against 127.0.0.1:`port`; its samples."""
    path = tmp_path / "samples.csv.gz"
    config = {"format_version": 1,
              "task_mix": {"protocol": protocol, "weights": {"lookupUpcomingAppointment": 1},
                           "think_time_s": {"min": 0.1, "max": 0.1}},
              "dataset": {k: getattr(SMALL, k) for k in ("orgs", "providers_per_org", "contacts",
                                                                "appointments", "seed")},
              "scenario": None, "samples_path": str(path)}
    (tmp_path / "config.json").write_text(json.dumps(config))
    # 2 s of ~10 requests a second on an idle machine; a busy one gets longer, so that some request is sent at all
    seconds = max(2, round(budget(2)))
    subprocess.run([sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", "1", "-r", "1",
                    "-t", f"{seconds}s", "--host", f"http://127.0.0.1:{port}", "--loglevel", "WARNING",
                    "--exit-code-on-error", "0"],
                   env={**os.environ, "BOOKBENCH_RUN_CONFIG": str(tmp_path / "config.json")},
                   check=True, capture_output=True, timeout=budget(60))
    return analysis.load_samples(path)


@pytest.mark.integration
@pytest.mark.parametrize(("protocol", "target", "names"), [
    ("rest", "refused", ("ConnectionRefusedError: ",)),
    ("vapi", "hangs up", ("HTTPConnectionClosed", "RemoteDisconnected", "ConnectionResetError")),
])
def test_a_request_without_an_http_answer_records_the_client_error(tmp_path: Path, protocol: str, target: str,
                                                                   names: tuple[str, ...]) -> None:
    if target == "refused":
        df = run_locust(tmp_path, protocol, free_port())  # nothing listens there
    else:
        with closes_every_connection() as port:
            df = run_locust(tmp_path, protocol, port)
    assert len(df) > 0 and set(df["status"]) == {0} and set(df["ok"]) == {0}
    assert all(error.startswith(names) for error in df["error"]), set(df["error"])
    # and the summary groups them under that text
    assert all(key.startswith(names) for key in error_groups.errors_by_message(df).counts)
