"""The `pools` block of a profile: where tenants and their contacts and providers come from (the reference
dataset's layout, inline lists or ranges, a CSV, SQL through --dsn, or list calls to the API itself)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from bookbench.target.fields import Strict, known

IdList = list[int] | list[str] | str  # a list, or ranges as text: "1-100, 205"


class TenantPool(Strict):
    contacts: IdList
    providers: IdList


class ListCall(Strict):
    """A request whose answer lists one tenant's contacts (or providers), sent once per tenant with that tenant's
    auth (its login included) before the load. The ids are read at `id_key` in every item of the list found at
    `list_path`: `list_path: ""` is the answer itself (PostgREST's `[{"id": 1}, ...]`), `data.items` a list inside
    an envelope; `id_key: null` when the items are the ids themselves. One answer is read: no pagination, so ask
    for every row (PostgREST answers every row unless a limit is given)."""

    method: Literal["GET", "POST"] = "GET"
    path: str
    query: dict[str, str] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None
    list_path: str = ""
    id_key: str | None = "id"  # a JSON path inside each item ("id", "ref.value")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("path must start with / (the base URL comes from the profile or --target-url)")
        known(value, frozenset({"tenant"}))
        return value

    @field_validator("query", "headers", "body")
    @classmethod
    def _templates(cls, value: Any) -> Any:
        return known(value, frozenset({"tenant"}))


class Pools(Strict):
    """Tenants and their contacts and providers: the reference dataset's layout (`dataset`), inline lists or
    ranges, a CSV (tenant, kind, id), SQL run once through --dsn (each query returns tenant and id), or the
    answers of two list calls to the API made for each tenant of `tenants_list` (`call`)."""

    source: Literal["dataset", "inline", "csv", "sql", "call"] = "dataset"
    tenants: dict[str, TenantPool] | None = None  # inline
    file: Path | None = None  # csv
    contacts_sql: str | None = None
    providers_sql: str | None = None
    tenants_list: IdList | None = None  # call: the tenants whose lists are asked for ("1-5", [clinic-a, ...])
    contacts_call: ListCall | None = None
    providers_call: ListCall | None = None

    @model_validator(mode="after")
    def _complete(self) -> Pools:
        need = {"inline": ("tenants",), "csv": ("file",), "sql": ("contacts_sql", "providers_sql"),
                "call": ("tenants_list", "contacts_call", "providers_call")}
        missing = [k for k in need.get(self.source, ()) if getattr(self, k) is None]
        if missing:
            raise ValueError(f"source {self.source} needs {', '.join(missing)}")
        return self
