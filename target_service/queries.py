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

# One statement, so atomic: the cancellation, its SMS and its calendar delete (transactional outbox), and a wake-up
# for the dispatchers (delivered at commit). Returns no row when nothing was cancelled.
# A dedup key names one event, not one appointment: an appointment set back to 'booked' by hand can be cancelled
# again, and that second cancellation is a message of its own. The first cancellation keeps the key every provider
# and report already knows (sms-cancel-<id>, bb<id>-delete); a later one adds its transaction id, unique for the
# cluster's life. The probe for an earlier one is a lookup in dedup_key's unique index, not a scan of the outbox.
CANCEL = """
WITH c AS (
    UPDATE appointments SET status = 'cancelled', cancelled_at = now()
     WHERE id = $2 AND org_id = $1 AND status = 'booked'
    RETURNING id, org_id, contact_id, provider_id),
ev AS (
    SELECT c.*, CASE WHEN EXISTS (SELECT 1 FROM notification_outbox o
                                   WHERE o.dedup_key IN ('sms-cancel-' || c.id, 'bb' || c.id || '-delete'))
                     THEN '-' || txid_current()::text ELSE '' END AS again
      FROM c),
queued AS (
    INSERT INTO notification_outbox (appointment_id, org_id, channel, kind, dedup_key, payload)
    SELECT ev.id, ev.org_id, 'sms', 'cancel', 'sms-cancel-' || ev.id || ev.again,
           jsonb_build_object('to', ct.phone, 'body', 'Cancelled: appointment ' || ev.id)
      FROM ev JOIN contacts ct ON ct.id = ev.contact_id
    UNION ALL
    SELECT ev.id, ev.org_id, 'calendar', 'delete', 'bb' || ev.id || '-delete' || ev.again,
           jsonb_build_object('calendar_id', 'provider-' || ev.provider_id, 'event_id', 'bb' || ev.id)
      FROM ev
    RETURNING 1)
SELECT c.id, (SELECT count(*) FROM queued) AS queued, pg_notify('bookbench_outbox', '') FROM c
"""

APPOINTMENT_STATUS = "SELECT status FROM appointments WHERE id = $2 AND org_id = $1"

ORG_BY_KEY_HASH = "SELECT id FROM organizations WHERE api_key_hash = $1"

# /stats: the outbox by channel and status, and each provider's breaker
OUTBOX_STATS = "SELECT channel, status, count(*) AS n FROM notification_outbox GROUP BY channel, status"
BREAKERS = "SELECT provider, state FROM notification_breaker"
