"""Dataset parameters: validation, id layout and key derivation, without a server."""

import datetime as dt
import hashlib

import pytest

from bookbench.config.dataset import DatasetParams, api_key
from bookbench.errors import UsageError


def test_layout_deals_ids_round_robin() -> None:
    p = DatasetParams(orgs=3, providers_per_org=2, contacts=10, appointments=0)
    assert list(p.contacts_of(2)) == [2, 5, 8]
    assert list(p.providers_of(3)) == [3, 6]
    assert all(p.org_of(c) == 2 for c in p.contacts_of(2))


@pytest.mark.parametrize(("changes", "message"), [
    ({"orgs": 0}, "orgs must be >= 1"),
    ({"contacts": 2, "orgs": 5}, "contacts (2) must be >= orgs (5)"),
    ({"appointments": 10**9}, "exceed the slot capacity"),
])
def test_invalid_params_name_the_problem(changes: dict[str, int], message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        DatasetParams(**changes).validate()  # type: ignore[arg-type]


def test_public_params_never_carry_the_secret() -> None:
    p = DatasetParams(key_secret="do-not-leak", anchor=dt.date(2026, 1, 1))
    public = p.public()
    assert "do-not-leak" not in str(public)
    assert public["key_secret"].startswith("pbkdf2:")
    assert p.fingerprint() != DatasetParams(key_secret="other", anchor=dt.date(2026, 1, 1)).fingerprint()


def test_stride_is_coprime_with_the_slot_grid() -> None:
    for days in (1, 10, 485, 7919):
        p = DatasetParams(past_days=days, future_days=1)
        assert p.slots_per_provider % p.stride != 0


def test_api_key_shape() -> None:
    key = api_key(7, "s")
    assert key.startswith("bk_7_") and len(key) == len("bk_7_") + 32
    assert key[5:] == hashlib.sha256(b"s:7").hexdigest()[:32]
