"""Every SQL statement the service runs, in one place so that EXPLAIN and benchmarks use the same text."""

# Availability: the provider row (NULL appointment columns when the day is empty; no row at all when the
# provider is not in this org) joined to the non-cancelled appointments that can overlap the day.
# The lower bound reaches back by the longest duration (240 min) so the range stays indexable.
AVAILABILITY = """
SELECT p.id AS provider_id, a.scheduled_at, a.duration_minutes
  FROM providers p
  LEFT JOIN appointments a
    ON a.org_id = p.org_id AND a.provider_id = p.id AND a.status <> 'cancelled'
   AND a.scheduled_at > $3::timestamptz - interval '240 minutes' AND a.scheduled_at < $4::timestamptz
 WHERE p.id = $2 AND p.org_id = $1
"""

# The seed's lookup (org + contact + scheduled_at >= now()), with the contact's own row so that "not your
# contact" (no row) and "no upcoming appointment" (NULL appointment) are told apart in one round trip.
UPCOMING = """
SELECT c.id AS contact_id, a.id, a.provider_id, a.scheduled_at, a.duration_minutes
  FROM contacts c
  LEFT JOIN LATERAL (
        SELECT id, provider_id, scheduled_at, duration_minutes
          FROM appointments
         WHERE org_id = c.org_id AND contact_id = c.id AND status = 'booked' AND scheduled_at >= now()
         ORDER BY scheduled_at
         LIMIT 1) a ON true
 WHERE c.id = $2 AND c.org_id = $1
"""

BOOK = "SELECT status, appointment_id FROM book_appointment_atomic($1, $2, $3, $4, $5)"

CANCEL = """
UPDATE appointments SET status = 'cancelled', cancelled_at = now()
 WHERE id = $2 AND org_id = $1 AND status = 'booked'
RETURNING id
"""

APPOINTMENT_STATUS = "SELECT status FROM appointments WHERE id = $2 AND org_id = $1"

ORG_BY_KEY_HASH = "SELECT id FROM organizations WHERE api_key_hash = $1"
