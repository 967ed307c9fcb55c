"""Registers the `bench` marker (pytest runs with warnings as errors, so an unknown marker would fail) and the
`--bench-check` option: with it, a benchmark that misses a goal it states fails (benchmarks/goals.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from benchmarks import goals


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--bench-check", action="store_true", default=False,
                     help="fail a benchmark whose stated goal is missed (make bench-check); default: print only")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "bench: a throughput benchmark run by `make bench`, never by `make test`")
    if config.getoption("--bench-check", default=False):
        os.environ[goals.CHECK_ENV] = "1"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    # after the body: every figure is printed first, then the misses (if checking) fail the test as one error
    goals.take_missed()
    result = yield
    missed = goals.take_missed()
    if missed and goals.checking():
        pytest.fail("stated goal(s) missed (make bench-check):\n  " + "\n  ".join(missed), pytrace=False)
    return result
