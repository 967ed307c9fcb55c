-- bookbench's set for the queries the reference service actually runs. Two indexes, each serving named queries;
-- everything else the service reads goes through a primary key or a constraint's index.

-- Serves: the conflict check inside book_appointment_atomic and the availability query (GET
-- /api/v1/providers/{id}/availability, checkAvailability). Both filter org + provider + a bounded scheduled_at
-- range over non-cancelled rows; the partial predicate matches theirs, and INCLUDE lets the overlap test on
-- duration_minutes run from the index alone.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_appointments_provider_slot
    ON appointments (org_id, provider_id, scheduled_at) INCLUDE (duration_minutes)
    WHERE status <> 'cancelled';

-- Serves: the upcoming-appointment lookup (GET /api/v1/contacts/{id}/appointments/upcoming,
-- lookupUpcomingAppointment): contact + status 'booked' + scheduled_at >= now() ORDER BY scheduled_at LIMIT 1.
-- contact ids are global, so org_id need not lead; the org filter is checked on the single row found.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_appointments_contact_upcoming
    ON appointments (contact_id, scheduled_at)
    WHERE status = 'booked';
