-- A (table, region) pair that keeps failing is retried with backoff, not
-- every round, and its status says why it failed in one word.
ALTER TABLE infra.sync_status
    ADD COLUMN last_error_class text,
    ADD COLUMN failures int NOT NULL DEFAULT 0,
    ADD COLUMN next_attempt_at timestamptz;

COMMENT ON COLUMN infra.sync_status.last_error_class IS 'The kind of the last failure: throttled, denied, invalid, conflict, not_found, unavailable (AWS) or database; NULL after a success';
COMMENT ON COLUMN infra.sync_status.failures IS 'Rounds failed in a row; 0 after a success';
COMMENT ON COLUMN infra.sync_status.next_attempt_at IS 'When the background loop tries this pair again after failures (the interval doubled per failure, at most 32 times it or 10 minutes); NULL when not backing off. SELECT infra.sync(...) tries now regardless';

-- The errors of infra.sync() carry the class too.
CREATE OR REPLACE FUNCTION infra.sync(table_name text DEFAULT NULL, region text DEFAULT NULL) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'tables', count(*),
        'resources_seen', coalesce(sum(s.resources_seen), 0),
        'errors', coalesce(jsonb_agg(jsonb_build_object('table', s.table_name, 'region', s.region, 'error', s.last_error,
                                                        'class', s.last_error_class))
                           FILTER (WHERE s.last_error IS NOT NULL), '[]'::jsonb),
        'open_drift', (SELECT count(*) FROM infra.drift d WHERE d.resolution = 'open'
                       AND ($1 IS NULL OR d.table_name = $1) AND ($2 IS NULL OR d.region = $2)))
    FROM infra.sync_status s
    WHERE ($1 IS NULL OR s.table_name = $1) AND ($2 IS NULL OR s.region = $2)
$$;
