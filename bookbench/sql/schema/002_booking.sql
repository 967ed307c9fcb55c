-- The one booking function and its conflict check. Correct by construction, whatever indexes exist:
--  * pg_advisory_xact_lock on (org, provider) serializes every booking of one practitioner, so two
--    overlapping slots with different start times cannot both pass the conflict check;
--  * it refuses anything but READ COMMITTED: under REPEATABLE READ / SERIALIZABLE the conflict check would read
--    a snapshot taken before the lock was granted and could miss the booking that just committed;
--  * the conflict check (appointment_conflicts, below) bounds scheduled_at on both sides so that an index on
--    (org_id, provider_id, scheduled_at) can serve it.
-- A conflict is an answer (status 'slot_taken'), not an exception.
-- A booking queues its SMS confirmation and calendar event in notification_outbox in the same transaction.

-- The conflict check, written once: the booking function runs it under its lock, and db/evidence.py EXPLAINs it
-- as `SELECT 1 FROM appointment_conflicts($1, $2, $3, $4)`. A set-returning LANGUAGE sql function that is STABLE
-- and not STRICT is inlined by the planner into the query that calls it, so both plans are the plan of the
-- SELECT below, with the index on (org_id, provider_id, scheduled_at) in it; tests/db holds that it stays inlined
-- (a "Function Scan" would hide the index and cost a call per booking). PARALLEL SAFE because the planner decides
-- whether a query may go parallel before it inlines: without it, a booking on a table with no index would lose the
-- parallel scan it had when the check was written inline. The lower bound reaches back by the longest duration
-- (240 minutes) so that the range stays indexable.
CREATE OR REPLACE FUNCTION appointment_conflicts(
    p_org_id bigint,
    p_provider_id bigint,
    p_start timestamptz,
    p_end timestamptz
) RETURNS SETOF integer
LANGUAGE sql
STABLE
PARALLEL SAFE
AS $fn$
    SELECT 1 FROM appointments a
     WHERE a.org_id = p_org_id
       AND a.provider_id = p_provider_id
       AND a.status <> 'cancelled'
       AND a.scheduled_at > p_start - interval '240 minutes'
       AND a.scheduled_at < p_end
       AND a.scheduled_at + make_interval(mins => a.duration_minutes) > p_start
$fn$;

CREATE OR REPLACE FUNCTION book_appointment_atomic(
    p_org_id bigint,
    p_contact_id bigint,
    p_provider_id bigint,
    p_start timestamptz,
    p_duration_minutes integer
) RETURNS TABLE (status text, appointment_id bigint)
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_end timestamptz;
    v_id bigint;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'book_appointment_atomic must run under READ COMMITTED, not %',
            upper(current_setting('transaction_isolation'))
            USING ERRCODE = 'invalid_transaction_state';
    END IF;

    IF p_start IS NULL OR p_duration_minutes IS NULL
       OR p_duration_minutes NOT BETWEEN 5 AND 240
       OR p_start < now() THEN
        RETURN QUERY SELECT 'invalid'::text, NULL::bigint;
        RETURN;
    END IF;
    v_end := p_start + make_interval(mins => p_duration_minutes);

    PERFORM 1 FROM contacts c WHERE c.id = p_contact_id AND c.org_id = p_org_id;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'contact_not_found'::text, NULL::bigint;
        RETURN;
    END IF;
    PERFORM 1 FROM providers p WHERE p.id = p_provider_id AND p.org_id = p_org_id;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'provider_not_found'::text, NULL::bigint;
        RETURN;
    END IF;

    -- two int4 keys: (org, provider). A collision after the modulo only serializes more, never less.
    PERFORM pg_advisory_xact_lock((p_org_id % 2147483647)::int, (p_provider_id % 2147483647)::int);

    PERFORM 1 FROM appointment_conflicts(p_org_id, p_provider_id, p_start, v_end);
    IF FOUND THEN
        RETURN QUERY SELECT 'slot_taken'::text, NULL::bigint;
        RETURN;
    END IF;

    INSERT INTO appointments (org_id, contact_id, provider_id, scheduled_at, duration_minutes, status)
    VALUES (p_org_id, p_contact_id, p_provider_id, p_start, p_duration_minutes, 'booked')
    RETURNING id INTO v_id;

    -- the notifications commit with the booking (transactional outbox); NOTIFY is delivered only at commit
    INSERT INTO notification_outbox (appointment_id, org_id, channel, kind, dedup_key, payload)
    SELECT v_id, p_org_id, 'sms', 'confirm', 'sms-confirm-' || v_id,
           jsonb_build_object('to', c.phone, 'body',
                              format('Booked: appointment %s on %s UTC', v_id,
                                     to_char(p_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')))
      FROM contacts c WHERE c.id = p_contact_id
    UNION ALL
    SELECT v_id, p_org_id, 'calendar', 'insert', 'bb' || v_id,
           jsonb_build_object('calendar_id', 'provider-' || p_provider_id, 'event_id', 'bb' || v_id,
                              'start', p_start, 'end', v_end, 'summary', 'Appointment ' || v_id);
    PERFORM pg_notify('bookbench_outbox', '');

    RETURN QUERY SELECT 'booked'::text, v_id;
END;
$fn$;
