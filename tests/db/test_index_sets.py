"""Index set files parse, keep the seed's names, and unknown sets fail clearly."""

import pytest

from bookbench.db.indexes import available_sets, load_set
from bookbench.errors import UsageError

SEED_NAMES = {
    "idx_appointments_org_contact_date", "idx_appointments_org_id", "idx_appointments_contact_id",
    "idx_appointments_scheduled_at", "idx_contacts_org_id_id", "idx_organizations_id",
    "idx_appointments_org_status",
}


def test_seed_set_has_the_seven_checklist_indexes() -> None:
    assert {d.name for d in load_set("seed")} == SEED_NAMES


def test_recommended_set_targets_the_service_queries() -> None:
    defs = load_set("recommended")
    assert defs and all(d.table == "appointments" for d in defs)
    assert all("CONCURRENTLY IF NOT EXISTS" in d.sql for d in defs)


def test_baseline_is_empty_and_listed() -> None:
    assert load_set("none") == []
    assert {"none", "seed", "recommended"} <= set(available_sets())


def test_unknown_set_names_the_choices() -> None:
    with pytest.raises(UsageError, match=r"unknown index set 'fast'.*recommended"):
        load_set("fast")
