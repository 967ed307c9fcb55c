"""A port from free_port() is not handed out again to the next bind(0), and the servers bookbench starts on one
(the service, the embedded PostgreSQL) take another when a process took theirs in between."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from bookbench.db import embedded
from bookbench.db.embedded import EmbeddedPostgres, free_port
from bookbench.db.schema import apply_schema
from bookbench.pipeline import stack
from bookbench.pipeline.stack import ServiceProcess
from tests.conftest import run_sql


@contextmanager
def taken_port() -> Iterator[int]:
    """A port another process listens on (no SO_REUSEADDR bind can share it)."""
    with socket.create_server(("127.0.0.1", 0)) as other:
        yield int(other.getsockname()[1])


def first_then_free(monkeypatch: pytest.MonkeyPatch, module: object, port: int) -> list[int]:
    """free_port() in `module` returns `port` once, then real free ports; the list records what it returned."""
    handed: list[int] = []

    def fake() -> int:
        handed.append(port if not handed else free_port())
        return handed[-1]

    monkeypatch.setattr(module, "free_port", fake)
    return handed


def test_a_free_port_is_not_handed_out_again_and_a_server_can_bind_it() -> None:
    port = free_port()
    others = set()
    for _ in range(2000):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            others.add(sock.getsockname()[1])
    assert port not in others
    with socket.socket() as server:  # as uvicorn, PostgreSQL and ZeroMQ bind
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()


@pytest.mark.integration
def test_the_service_takes_another_port_when_its_port_was_taken(monkeypatch: pytest.MonkeyPatch,
                                                                new_db: Callable[[], str], tmp_path: Path) -> None:
    dsn = new_db()
    run_sql(dsn, apply_schema)
    with taken_port() as port:
        handed = first_then_free(monkeypatch, stack, port)
        proc = ServiceProcess(dsn, log_path=tmp_path / "service.log")
        try:
            proc.start()
            assert handed[0] == port and proc.port != port and len(handed) == 2
            assert httpx.get(f"{proc.base_url}/readyz", timeout=5).status_code == 200
        finally:
            proc.stop()


@pytest.mark.integration
def test_the_embedded_server_takes_another_port_when_its_port_was_taken(monkeypatch: pytest.MonkeyPatch,
                                                                        tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "pg")
    try:
        with taken_port() as port:
            handed = first_then_free(monkeypatch, embedded, port)
            state = server.start()
        assert handed[0] == port and state.port == handed[-1] != port
    finally:
        server.destroy()
