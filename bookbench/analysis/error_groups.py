"""Failed requests grouped by message: what differs between errors of one kind (ids, numbers, addresses) replaced
by a placeholder, so that `appointment 123 not found` and `appointment 456 not found` count as one group."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the frame's methods only: no import at run time
    import pandas as pd

ERROR_GROUPS = 20
# What differs between errors of one kind (`appointment 123 not found`, `127.0.0.1:5432`), replaced by a placeholder
# so that they group together: uuids, IPv4 addresses, hex (0x..., or a run of 6+ hex digits holding a digit and a
# letter), then any number not glued to a word (utf8, h2 stay). An HTTP status or an errno names the kind: kept.
_VARIABLE = re.compile(
    r"(?P<uuid>\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b)"
    r"|(?P<ip>\b\d{1,3}(?:\.\d{1,3}){3}\b)"
    r"|(?P<hex>\b0x[0-9a-f]+\b|\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{6,}\b)"
    r"|(?P<n>(?<!\w)(?<!HTTP )(?<!Errno )\d+(?:\.\d+)?)",
    re.IGNORECASE,
)


def normalise_error(message: str) -> tuple[str, list[str]]:
    """The message with its variable parts replaced by placeholders, and those parts in order:
    `HTTP 404: appointment 123 not found` -> (`HTTP 404: appointment <n> not found`, [`123`])."""
    values: list[str] = []

    def placeholder(found: re.Match[str]) -> str:
        values.append(found.group())
        return f"<{found.lastgroup}>"

    return _VARIABLE.sub(placeholder, message), values


def _error_text(error: str, status: int) -> str:
    """A failure's message; older samples files left it empty for a request that got no HTTP answer."""
    return error.strip() or (f"HTTP {status}" if status else "no HTTP response (client-side error, not recorded)")


@dataclass(frozen=True)
class ErrorGroups:
    """The summary's `errors_by_message` (counts) and `error_examples` (examples)."""
    counts: dict[str, int]  # failed requests per normalised message, the largest groups first
    examples: dict[str, str]  # for each group that had variable parts, its most frequent real message


def errors_by_message(failed: pd.DataFrame, top: int = ERROR_GROUPS) -> ErrorGroups:
    """Failed requests (a frame's rows) counted per normalised message: errors_by_count() of their messages."""
    counted = failed.groupby(["error", "status"], sort=False).size()
    keys = counted.index
    return errors_by_count(zip(keys.get_level_values(0).astype(str), keys.get_level_values(1).astype(int),
                               counted.to_numpy(dtype=int), strict=True), top)


def errors_by_count(failed: Iterable[tuple[str, int, int]], top: int = ERROR_GROUPS) -> ErrorGroups:
    """Failed requests, given as (error, status, how many), counted per normalised message (`HTTP 404:
    appointment <n> not found`), the `top` largest groups first, each with an example when its messages had
    variable parts. The engine counts the distinct (error, status) pairs: memory grows with the kinds of error,
    not the failures."""
    texts: dict[str, int] = {}
    for error, status, n in failed:
        text = _error_text(error, status)
        texts[text] = texts.get(text, 0) + n
    counts: dict[str, int] = {}
    examples: dict[str, str] = {}
    # each distinct message normalised once, the most frequent first (it becomes its group's example)
    for text, n in sorted(texts.items(), key=lambda item: (-item[1], item[0])):
        pattern, values = normalise_error(text)
        counts[pattern] = counts.get(pattern, 0) + n
        if values:
            examples.setdefault(pattern, text)
    ranked = sorted(counts, key=lambda p: (-counts[p], p))[:top]
    return ErrorGroups({p: counts[p] for p in ranked}, {p: examples[p] for p in ranked if p in examples})
