"""The end-of-scenario counts line: an unknown count is said to be unknown, never shown as agreement."""

from __future__ import annotations

from bookbench.artifacts.manifest import Counts
from bookbench.pipeline.run import _agreement


def test_unknown_counts_are_never_agreement() -> None:
    assert _agreement(Counts(samples=10, locust=10, service=10)) == "counts agree"
    assert _agreement(Counts(samples=10, locust=10, service=None)) == (
        "Locust's count agrees; the service's count unknown")
    assert _agreement(Counts(samples=10, locust=None, service=None)) == "Locust's and the service's count unknown"
    assert _agreement(Counts(samples=10, locust=9, service=None)) == "COUNTS DIFFER"
