"""What a run says as it goes: the events the pipeline emits (`Event`, given to a `Narrator`), and their one rendering
on a rich console (`narrate_to`): a line per event, the progress line redrawn on a terminal or printed every few
seconds when piped."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from rich.console import Console
from rich.live import Live
from rich.text import Text

# "say": a line of the run's story; "warning" / "failure": the same, in yellow / red; "progress_start",
# "progress", "progress_end": one scenario's progress line, drawn while its Locust runs (see locust_proc.watch)
Kind = Literal["say", "warning", "failure", "progress_start", "progress", "progress_end"]


@dataclass(frozen=True)
class Event:
    text: str  # rich console markup unless markup is False
    kind: Kind = "say"
    style: str | None = None
    markup: bool = True
    # one logical line, never wrapped whatever the console's setting (a log reader greps it whole); False: as the
    # console does
    soft_wrap: bool = False


Narrator = Callable[[Event], None]


def say(text: str, soft_wrap: bool = False) -> Event:
    return Event(text, soft_wrap=soft_wrap)


def warning(text: str, markup: bool = True) -> Event:
    return Event(text, "warning", "yellow", markup)


def failure(text: str) -> Event:
    return Event(text, "failure", "red")


# a progress line every this many seconds when the output is not a terminal (CI logs, pipes)
PLAIN_EVERY_S = 5.0


class ConsoleNarrator:
    """Renders events on a rich console: each line as printed before events existed, the progress line as a Live
    display redrawn twice a second on a terminal, and otherwise (piped, CI) as a plain whole line every
    PLAIN_EVERY_S seconds when it changed, and once at the end."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live: Live | None = None
        self.last_plain = time.monotonic()
        self.printed = ""

    def __call__(self, event: Event) -> None:
        if event.kind == "progress_start":
            self._start(event.text)
        elif event.kind == "progress":
            self._progress(event.text)
        elif event.kind == "progress_end":
            self._end(event.text)
        else:
            # soft_wrap None: the console's own setting (the CLI's never cuts a line at 80 columns); False here would
            # override it and fold a long run-folder path in two in a piped log
            self.console.print(event.text, style=event.style, markup=event.markup, soft_wrap=event.soft_wrap or None)

    def _start(self, text: str) -> None:
        self.last_plain, self.printed = time.monotonic(), ""
        if self.console.is_terminal:
            self.live = Live(Text(text), console=self.console, refresh_per_second=2, transient=False)
            self.live.start()

    def _progress(self, text: str) -> None:
        if self.live is not None:
            self.live.update(Text(text, overflow="fold"))  # wraps onto a second line on a narrow terminal
        elif time.monotonic() - self.last_plain >= PLAIN_EVERY_S and text != self.printed:
            self.console.print(text, soft_wrap=True)
            self.last_plain, self.printed = time.monotonic(), text

    def _end(self, text: str) -> None:
        """Stop the display; piped, the final line unless it was the last printed (empty text: ended by an
        exception, nothing more to say)."""
        if self.live is not None:
            self.live.stop()
            self.live = None
        elif text and text != self.printed:
            self.console.print(text, soft_wrap=True)


def narrate_to(console: Console) -> Narrator:
    """The adapter for callers that hold a console (the CLI, compare, sweep, capacity)."""
    return ConsoleNarrator(console)
