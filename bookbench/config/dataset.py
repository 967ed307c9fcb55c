"""Dataset parameters and the id layout the load generator relies on (pure: no database access)."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from bookbench.errors import UsageError

SLOTS_PER_DAY = 16  # 09:00-17:00 UTC in 30-minute slots
DEFAULT_KEY_SECRET = "bookbench-dataset-secret"
_STRIDE_PRIMES = (7919, 7927, 7933, 7937, 104729, 1299709)


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


@dataclass(frozen=True)
class DatasetParams:
    """Everything that determines the generated rows; equal params give identical tables."""

    orgs: int = 50
    providers_per_org: int = 10
    contacts: int = 100_000
    appointments: int = 1_000_000
    seed: int = 42
    past_days: int = 365
    future_days: int = 120
    anchor: dt.date = field(default_factory=_today)
    # the secret the API keys derive from; part of the identity but never written to any artifact
    key_secret: str = field(default=DEFAULT_KEY_SECRET, repr=False)

    def validate(self) -> None:
        problems = []
        if self.orgs < 1:
            problems.append("orgs must be >= 1")
        if self.providers_per_org < 1:
            problems.append("providers_per_org must be >= 1")
        if self.contacts < self.orgs:
            problems.append(f"contacts ({self.contacts}) must be >= orgs ({self.orgs})")
        if self.appointments < 0:
            problems.append("appointments must be >= 0")
        if self.past_days < 1 or self.future_days < 1:
            problems.append("past_days and future_days must be >= 1")
        capacity = self.providers * self.slots_per_provider
        if self.appointments > capacity:
            problems.append(
                f"appointments ({self.appointments}) exceed the slot capacity {capacity} "
                f"({self.providers} providers x {self.slots_per_provider} slots); raise providers_per_org"
            )
        if problems:
            raise UsageError("invalid dataset parameters: " + "; ".join(problems))

    @property
    def providers(self) -> int:
        return self.orgs * self.providers_per_org

    @property
    def slots_per_provider(self) -> int:
        return (self.past_days + self.future_days) * SLOTS_PER_DAY

    @property
    def stride(self) -> int:
        slots = self.slots_per_provider
        return next(p for p in _STRIDE_PRIMES if slots % p != 0)

    def public(self) -> dict[str, Any]:
        """Parameters fit for a manifest: the secret is replaced by a fingerprint."""
        data = asdict(self)
        data["anchor"] = self.anchor.isoformat()
        data["key_secret"] = _secret_fingerprint(self.key_secret)
        return data

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.public(), sort_keys=True).encode()).hexdigest()[:16]

    # -- the id layout, mirrored from sql/schema/003_dataset.sql --------------------------------------------
    def org_of(self, entity_id: int) -> int:
        """Org of a provider or contact id (both are dealt round-robin over the orgs)."""
        return (entity_id - 1) % self.orgs + 1

    def contacts_of(self, org_id: int) -> range:
        return range(org_id, self.contacts + 1, self.orgs)

    def providers_of(self, org_id: int) -> range:
        return range(org_id, self.providers + 1, self.orgs)


@functools.lru_cache(maxsize=16)
def _secret_fingerprint(secret: str) -> str:
    """Tells datasets with different key secrets apart; PBKDF2 so that a run folder cannot be used to guess the
    secret (and from it every org's API key) quickly."""
    if secret == DEFAULT_KEY_SECRET:
        return "default"
    return "pbkdf2:" + hashlib.pbkdf2_hmac("sha256", secret.encode(), b"bookbench-dataset", 200_000).hex()[:16]


def api_key(org_id: int, secret: str = DEFAULT_KEY_SECRET) -> str:
    """An org's API key; must match bookbench_api_key() in SQL."""
    digest = hashlib.sha256(f"{secret}:{org_id}".encode()).hexdigest()[:32]
    return f"bk_{org_id}_{digest}"


