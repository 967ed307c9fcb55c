-- The seven indexes of the seed's Phase 6 checklist (backend/sql/performance-indexes.sql), names kept,
-- mapped onto this schema. Kept verbatim in intent so that bookbench can judge each one on measurements:
-- several duplicate a primary key or a left prefix, and none serves the booking's per-provider conflict check.

-- upcoming-appointment lookup of the seed's EXPLAIN (org + contact + scheduled_at >= now())
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_appointments_org_contact_date
    ON appointments (org_id, contact_id, scheduled_at);

-- tenant filter alone: ~50 orgs, so each value matches ~2 % of the table
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_appointments_org_id
    ON appointments (org_id);

-- a contact's appointments
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_appointments_contact_id
    ON appointments (contact_id);

-- time-range scans across every tenant
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_appointments_scheduled_at
    ON appointments (scheduled_at);

-- contact-belongs-to-org check (the primary key on id already answers it)
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_contacts_org_id_id
    ON contacts (org_id, id);

-- duplicate of organizations_pkey
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_organizations_id
    ON organizations (id);

-- status dashboards per tenant
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_appointments_org_status
    ON appointments (org_id, status);
