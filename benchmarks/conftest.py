"""Registers the `bench` marker: pytest runs with warnings as errors, so an unknown marker would fail."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "bench: a throughput benchmark run by `make bench`, never by `make test`")
