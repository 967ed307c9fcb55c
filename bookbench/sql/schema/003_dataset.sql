-- Deterministic, set-based dataset generator. Every "random" choice is hashint8extended(row, seed + salt), so the
-- same parameters give byte-identical tables on any server, and generation parallelizes without changing results.
--
-- Layout (the load generator derives ids from it without querying):
--   organization o = 1..orgs;  provider p belongs to org ((p-1) % orgs) + 1;  contact c likewise.
--   Appointment i goes to provider ((i-1) % P) + 1 at that provider's k-th slot, k = (i-1) / P, where slot
--   s = (k * stride + offset_p) mod S walks a 30-minute grid (09:00-17:00 UTC, S = days * 16) with a stride
--   coprime to S: no two appointments of one provider share a slot, and no duration exceeds 30 minutes, so the
--   seeded data never double-books.

CREATE OR REPLACE FUNCTION bookbench_generate(
    p_orgs integer,
    p_providers_per_org integer,
    p_contacts bigint,
    p_appointments bigint,
    p_seed bigint,
    p_anchor date,
    p_past_days integer,
    p_future_days integer,
    p_stride bigint,
    p_key_secret text
) RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_providers bigint := p_orgs::bigint * p_providers_per_org;
    v_slots bigint := (p_past_days + p_future_days)::bigint * 16;
    v_first_day timestamptz := (p_anchor - p_past_days)::timestamp AT TIME ZONE 'UTC';
BEGIN
    INSERT INTO organizations (id, name, api_key_hash, created_at)
    SELECT o,
           'Clinic ' || o,
           encode(sha256(convert_to(bookbench_api_key(o, p_key_secret), 'UTF8')), 'hex'),
           v_first_day
      FROM generate_series(1, p_orgs) AS o;

    INSERT INTO providers (id, org_id, name)
    SELECT p, ((p - 1) % p_orgs) + 1, 'Dr. Provider ' || p
      FROM generate_series(1, v_providers) AS p;

    INSERT INTO contacts (id, org_id, name, phone, created_at)
    SELECT c,
           ((c - 1) % p_orgs) + 1,
           'Patient ' || c,
           '+1555' || lpad(c::text, 9, '0'),
           v_first_day + make_interval(days => (abs(hashint8extended(c, p_seed + 11)) % p_past_days)::int)
      FROM generate_series(1, p_contacts) AS c;

    INSERT INTO appointments (id, org_id, contact_id, provider_id, scheduled_at, duration_minutes, status,
                              created_at, cancelled_at)
    SELECT g.i, g.org, g.contact, g.provider, g.at, g.duration, g.status,
           g.at - make_interval(days => 1 + (abs(hashint8extended(g.i, p_seed + 5)) % 30)::int),
           CASE WHEN g.status = 'cancelled' THEN g.at - interval '1 day' END
      FROM (
        SELECT s.i, s.provider, s.org, s.at,
               -- contacts of org o are o, o + orgs, o + 2*orgs, ...
               s.org + p_orgs * (abs(hashint8extended(s.i, p_seed + 2))
                                 % ((p_contacts - s.org) / p_orgs + 1)) AS contact,
               (ARRAY[15, 20, 30])[1 + abs(hashint8extended(s.i, p_seed + 3)) % 3] AS duration,
               CASE
                 WHEN s.at < p_anchor::timestamp AT TIME ZONE 'UTC' THEN
                   CASE WHEN s.r < 80 THEN 'completed' WHEN s.r < 88 THEN 'cancelled'
                        WHEN s.r < 95 THEN 'no_show' ELSE 'booked' END
                 ELSE CASE WHEN s.r < 90 THEN 'booked' ELSE 'cancelled' END
               END AS status
          FROM (
            SELECT i,
                   ((i - 1) % v_providers) + 1 AS provider,
                   ((((i - 1) % v_providers)) % p_orgs) + 1 AS org,
                   v_first_day
                     + make_interval(days => (slot / 16)::int)
                     + interval '9 hours'
                     + make_interval(mins => ((slot % 16) * 30)::int) AS at,
                   abs(hashint8extended(i, p_seed + 4)) % 100 AS r
              FROM (
                SELECT i,
                       (((i - 1) / v_providers) * p_stride
                        + abs(hashint8extended((i - 1) % v_providers + 1, p_seed + 1))) % v_slots AS slot
                  FROM generate_series(1, p_appointments) AS i
              ) AS raw
          ) AS s
      ) AS g;

    PERFORM setval(pg_get_serial_sequence('organizations', 'id'), greatest(p_orgs, 1));
    PERFORM setval(pg_get_serial_sequence('providers', 'id'), greatest(v_providers, 1));
    PERFORM setval(pg_get_serial_sequence('contacts', 'id'), greatest(p_contacts, 1));
    PERFORM setval(pg_get_serial_sequence('appointments', 'id'), greatest(p_appointments, 1));
END;
$fn$;

-- An org's API key, derivable by the load generator from the org id and the dataset secret.
CREATE OR REPLACE FUNCTION bookbench_api_key(p_org_id bigint, p_secret text) RETURNS text
LANGUAGE sql IMMUTABLE
AS $fn$
    SELECT 'bk_' || p_org_id || '_' || substr(encode(sha256(convert_to(p_secret || ':' || p_org_id, 'UTF8')), 'hex'), 1, 32)
$fn$;
