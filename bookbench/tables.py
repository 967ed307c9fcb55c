"""Tables on the terminal that a CI log can use: a terminal's width on a tty, their content's width anywhere else.

Piped to a file, rich draws at 80 columns (or $COLUMNS): a long cell then wraps over several lines and a figure
in a no-wrap column is cut to "2,634…". A log has no width to respect, so there a table is as wide as its
content and every figure and row stays whole, one line per row.
"""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table

# wide enough for any row bookbench prints; only the width a table is measured against, never padded to
_UNBOUNDED = 100_000


def on_tty(console: Console) -> bool:
    """True when the console writes to a real terminal. A forced terminal (FORCE_COLOR in CI, for colours) is
    not one: its width is a guess (80), and a log has none."""
    isatty = getattr(console.file, "isatty", None)
    try:
        return bool(isatty is not None and isatty())
    except ValueError:  # a closed file
        return False


class ContentTable(Table):
    """A rich Table that, away from a tty, renders at its content's width instead of the console's."""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if not on_tty(console) and self.width is None:
            natural = self.__rich_measure__(console, options.update_width(_UNBOUNDED)).maximum
            options = options.update_width(max(natural, 1))
        yield from super().__rich_console__(console, options)
