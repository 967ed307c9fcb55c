"""A target profile: where a booking API lives and how its four operations are asked and answered, as a validated
YAML file (unknown keys refused, every error with its key path or file:line:col; JSON Schema for editors)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from bookbench.config.yamlfile import key_marks, read_mapping
from bookbench.errors import UsageError
from bookbench.target.fields import Strict, known, placeholders_in
from bookbench.target.poolspec import Pools

OPERATIONS = ("checkAvailability", "lookupUpcomingAppointment", "bookClinicAppointment", "cancelAppointment")
Outcome = Literal["ok", "booked", "slot_taken", "not_found", "refused", "error"]
# what a template may name; {env:NAME} and {cred:FIELD} are resolved once per tenant, never per request
DEFAULT_SUCCESS: tuple[Outcome, ...] = ("ok", "booked", "slot_taken")
PLACEHOLDERS = frozenset({"tenant", "contact", "provider", "start", "end", "duration", "appointment", "date",
                          "now", "call_id", "token"})
BUILTIN_DIR = Path(__file__).resolve().parent / "profiles"


class When(Strict):
    """An answer matches when every condition given holds."""

    status: list[int] | None = None  # any of these HTTP status codes
    # JSON path (dots, list indexes as numbers: "results.0.error") -> the value it must hold
    json_equals: dict[str, Any] | None = Field(default=None, alias="json")
    json_exists: list[str] | None = None  # paths that must be present (and not null)
    json_missing: list[str] | None = None  # paths that must be absent or null
    matches: dict[str, str] | None = None  # path -> regular expression its text must match (search)
    empty_body: bool | None = None

    @field_validator("matches")
    @classmethod
    def _regexes(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for path, pattern in (value or {}).items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"matches.{path}: not a regular expression: {exc}") from None
        return value


class IdRule(Strict):
    """Where a booked answer holds the new appointment's id: a JSON path, optionally a regex whose first group is
    the id (a Vapi sentence), or a response header (Location)."""

    path: str | None = None
    regex: str | None = None
    header: str | None = None
    as_int: bool = False  # ids are text unless said; the reference service's are integers

    @model_validator(mode="after")
    def _somewhere(self) -> IdRule:
        if not (self.path or self.header):
            raise ValueError("an id rule needs a path or a header")
        if self.regex is not None:
            try:
                if re.compile(self.regex).groups < 1:
                    raise ValueError("regex needs a group around the id")
            except re.error as exc:
                raise ValueError(f"regex: {exc}") from None
        return self


class Answer(Strict):
    when: When
    outcome: Outcome
    id: IdRule | None = None  # booked answers: where the id is
    reason: str | None = None  # refused answers: the JSON path of the reason, shown in the error text

    @model_validator(mode="after")
    def _booked_has_id(self) -> Answer:
        if self.outcome == "booked" and self.id is None:
            raise ValueError("a booked answer needs id: where the new appointment's id is")
        return self


class Operation(Strict):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    path: str
    query: dict[str, str] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None  # a JSON template: a string that is exactly one placeholder keeps the value's type
    answers: list[Answer] = Field(min_length=1)
    # outcomes that count as a successful request in the samples (anything else is a failed sample)
    success: list[Outcome] = Field(default_factory=lambda: list(DEFAULT_SUCCESS))

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("path must start with / (the base URL comes from the profile or --target-url)")
        known(value, PLACEHOLDERS)
        return value

    @field_validator("query", "headers", "body")
    @classmethod
    def _templates(cls, value: Any) -> Any:
        return known(value, PLACEHOLDERS)


class Operations(Strict):
    """The four operations of a voice-agent call; a profile may leave out all but booking (the task mix then must
    not ask for the missing ones)."""

    checkAvailability: Operation | None = None
    lookupUpcomingAppointment: Operation | None = None
    bookClinicAppointment: Operation | None = None
    cancelAppointment: Operation | None = None

    def present(self) -> dict[str, Operation]:
        return {name: op for name in OPERATIONS if (op := getattr(self, name)) is not None}


class Login(Strict):
    """A call whose answer gives a tenant's token; it is repeated `refresh_before_s` before the token expires."""

    method: Literal["GET", "POST"] = "POST"
    path: str
    query: dict[str, str] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None
    token_path: str
    expires_in_path: str | None = None  # seconds until expiry; absent: default_ttl_s
    default_ttl_s: float = Field(default=300, gt=0)
    refresh_before_s: float = Field(default=30, ge=0)

    @field_validator("path", "query", "headers", "body")
    @classmethod
    def _templates(cls, value: Any) -> Any:
        return known(value, frozenset({"tenant"}))


class Credentials(Strict):
    """Where each tenant's secret comes from, named in templates as {cred:FIELD}: the reference dataset's key
    derivation (`dataset`: field `key`), environment variables (`env`: a name pattern with {tenant}), or a CSV
    file with a `tenant` column and one column per field (`file`)."""

    source: Literal["dataset", "env", "file", "none"] = "none"
    env_pattern: str | None = None  # e.g. CLINIC_{tenant}_TOKEN -> field `token`
    file: Path | None = None

    @model_validator(mode="after")
    def _complete(self) -> Credentials:
        if self.source == "env" and not (self.env_pattern and "{tenant}" in self.env_pattern):
            raise ValueError("source env needs env_pattern containing {tenant}, e.g. CLINIC_{tenant}_TOKEN")
        if self.source == "file" and self.file is None:
            raise ValueError("source file needs file: a CSV with a tenant column")
        return self


class Auth(Strict):
    """Headers and query parameters every request of a tenant carries ({token} is the login's token)."""

    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, str] = Field(default_factory=dict)
    login: Login | None = None
    credentials: Credentials = Credentials()

    @field_validator("headers", "query")
    @classmethod
    def _templates(cls, value: dict[str, str]) -> dict[str, str]:
        known(value, frozenset({"tenant", "token"}))
        return value

    @model_validator(mode="after")
    def _token_needs_login(self) -> Auth:
        if "token" in placeholders_in([self.headers, self.query]) and self.login is None:
            raise ValueError("{token} needs a login block (the call whose answer gives the token)")
        return self


def _check_zone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (an IANA name such as Europe/London)") from None
    return value


class Grid(Strict):
    """Where bookings are tried: slots of `slot_minutes` between `opens` and `closes`, `days_ahead` from today."""

    slot_minutes: int = Field(default=30, ge=5, le=240)
    opens: str = "09:00"
    closes: str = "17:00"
    days_ahead: tuple[int, int] = (1, 120)
    timezone: str = "UTC"

    @field_validator("opens", "closes")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
            raise ValueError("write the time as HH:MM")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return _check_zone(value)


class Times(Strict):
    """How {start}, {end}, {now} and {date} are written: ISO 8601 with offset, with Z, epoch seconds or ms, or
    local wall time without an offset; in `timezone`."""

    format: Literal["iso", "iso_z", "epoch_s", "epoch_ms", "local"] = "iso"
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return _check_zone(value)


class Audit(Strict):
    """The SQL the double-booking audit and the reconciliation need on the target's database (through --dsn)."""

    table: str = "appointments"
    id: str = "id"
    tenant: str = "org_id"
    contact: str = "contact_id"
    provider: str = "provider_id"
    start: str = "scheduled_at"
    duration_minutes: str = "duration_minutes"
    status: str = "status"
    cancelled: str = "cancelled"
    # how an id the API answers maps to the row's id (its first group), when they differ ("APT-000123" -> 123)
    answer_id_regex: str | None = None

    @model_validator(mode="after")
    def _identifiers(self) -> Audit:
        for key, value in self.model_dump().items():
            if key in ("cancelled", "answer_id_regex"):
                continue
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?", value):
                raise ValueError(f"{key}: {value!r} is not a plain SQL identifier")
        return self


class Profile(Strict):
    version: Literal[1]
    name: str
    description: str = ""
    base_url: str | None = None  # --target-url wins; the loopback rule applies either way
    timeout_s: float = Field(default=10, gt=0, le=300)
    auth: Auth = Auth()
    pools: Pools = Pools()
    grid: Grid = Grid()
    times: Times = Times()
    operations: Operations
    audit: Audit | None = None
    # the reference service's extras (/stats counts, the hostile and notification suites) apply to it alone
    reference: bool = False

    @model_validator(mode="after")
    def _ops(self) -> Profile:
        if self.operations.bookClinicAppointment is None:
            raise ValueError("operations needs at least bookClinicAppointment")
        return self

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:16]


class ProfileError(UsageError):
    """A profile file is unreadable or invalid; the message names every problem with its key path."""


def _where(exc: ValidationError, path: Path, marks: dict[tuple[str, ...], tuple[int, int]]) -> str:
    lines = [f"{path}: {exc.error_count()} problem(s)"]
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        key = ".".join(loc) or "(top level)"
        # the innermost key of the path that the YAML holds gives the line and column
        at = next((marks[loc[:i]] for i in range(len(loc), 0, -1) if loc[:i] in marks), None)
        prefix = f"{path}:{at[0]}:{at[1]}: " if at else ""
        lines.append(f"  {prefix}{key}: {err['msg']}")
    return "\n".join(lines)


def builtin_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def resolve(name_or_path: str) -> Path:
    """A built-in profile's name (reference-rest, reference-vapi, postgrest) or a file path."""
    if (BUILTIN_DIR / f"{name_or_path}.yaml").exists():
        return BUILTIN_DIR / f"{name_or_path}.yaml"
    path = Path(name_or_path)
    if not path.exists():
        raise ProfileError(f"--target {name_or_path}: no such file and not a built-in profile "
                           f"({', '.join(builtin_names())})")
    return path


def load(name_or_path: str) -> Profile:
    path = resolve(name_or_path)
    raw = read_mapping(path, ProfileError)
    try:
        profile = Profile.model_validate(raw)
    except ValidationError as exc:
        raise ProfileError(_where(exc, path, key_marks(path))) from exc
    # relative files in a profile are relative to the profile, not to wherever the command runs
    updates: dict[str, Any] = {}
    if profile.pools.file is not None and not profile.pools.file.is_absolute():
        updates["pools"] = profile.pools.model_copy(update={"file": path.parent / profile.pools.file})
    creds = profile.auth.credentials
    if creds.file is not None and not creds.file.is_absolute():
        updates["auth"] = profile.auth.model_copy(update={"credentials": creds.model_copy(
            update={"file": path.parent / creds.file})})
    return profile.model_copy(update=updates) if updates else profile


def json_schema() -> dict[str, Any]:
    """The profile file's JSON Schema (editors validate and complete with it)."""
    schema = Profile.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "bookbench target profile"
    return schema
