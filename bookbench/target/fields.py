"""What every part of a profile file shares: strict models (unknown keys refused) and the placeholder check on
templates, kept apart so that the pool and the profile models can both use them."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict

_PLACEHOLDER = re.compile(r"\{([a-z_]+)(?::([A-Za-z0-9_.-]+))?\}")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def placeholders_in(value: Any) -> set[str]:
    """Every placeholder a template names (a string, or the strings inside a JSON body template)."""
    if isinstance(value, str):
        return {m.group(1) if m.group(2) is None else f"{m.group(1)}:" for m in _PLACEHOLDER.finditer(value)}
    if isinstance(value, dict):
        return set().union(*(placeholders_in(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(placeholders_in(v) for v in value)) if value else set()
    return set()


def known(value: Any, allowed: frozenset[str]) -> Any:
    """`value` unchanged when every placeholder it names is allowed ({env:NAME} and {cred:FIELD} always are)."""
    unknown = {p for p in placeholders_in(value) if p not in allowed and p not in ("env:", "cred:")}
    if unknown:
        raise ValueError(f"unknown placeholder(s) {', '.join('{' + u + '}' for u in sorted(unknown))}; known: "
                         + ", ".join("{" + p + "}" for p in sorted(allowed)) + ", {env:NAME}, {cred:FIELD}")
    return value
