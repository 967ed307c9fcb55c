"""Which index sets a multi-run command applies: its default only on bookbench's own database."""

from __future__ import annotations

from bookbench.cli.common import split_list
from bookbench.errors import UsageError


def sets_to_apply(given: str | None, default: str, dsn: str | None, option: str = "--sets") -> list[str]:
    """The sets named on the command line, or `default` on the embedded database. On a --dsn database, which
    bookbench did not create, each set is created and dropped in turn: only when the user names them."""
    if given is None and dsn:
        raise UsageError(f"{option}: this command creates and drops indexes for each set; on a --dsn database "
                         f"name them on the command line (e.g. {option} {default}) to agree to that")
    return split_list(given if given is not None else default)


def deployment_url(target_url: str | None, dsn: str | None) -> str | None:
    """A multi-run command against a running deployment re-indexes its database between runs: that needs --dsn."""
    if target_url and not dsn:
        raise UsageError("--target-url: each index set is applied to the deployment's database; give it with --dsn")
    return target_url
