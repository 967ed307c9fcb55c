-- API-key changes announced to the service, which caches key lookups: a key whose hash is rotated, or whose
-- organization is deleted (or the table truncated by a re-seed), must stop working at once, not when a cache entry
-- expires. One NOTIFY per statement (bulk changes send one), delivered at commit; the service LISTENs on
-- 'bookbench_auth' and drops its cache. Created only when missing, so re-applying the schema never takes a lock on
-- organizations while a service is running.

CREATE OR REPLACE FUNCTION bookbench_auth_changed() RETURNS trigger
LANGUAGE plpgsql
AS $fn$
BEGIN
    PERFORM pg_notify('bookbench_auth', '');
    RETURN NULL;
END;
$fn$;

DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger
                    WHERE tgname = 'organizations_auth_changed' AND tgrelid = 'organizations'::regclass) THEN
        CREATE TRIGGER organizations_auth_changed
            AFTER UPDATE OF id, api_key_hash OR DELETE OR TRUNCATE ON organizations
            FOR EACH STATEMENT EXECUTE FUNCTION bookbench_auth_changed();
    END IF;
END;
$do$;
