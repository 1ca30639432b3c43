-- The sync loop's tables: drift, per-table drift policy, and sync status.

CREATE TABLE infra.drift (
    drift_id     bigserial PRIMARY KEY,
    detected_at  timestamptz NOT NULL DEFAULT now(),
    table_name   text NOT NULL,
    resource_id  text NOT NULL,
    region       text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('changed', 'appeared', 'disappeared')),
    field        text,
    known_value  jsonb,
    actual_value jsonb,
    resolution   text NOT NULL CHECK (resolution IN ('adopted', 'reverted', 'open')),
    resolved_at  timestamptz
);
CREATE INDEX drift_open ON infra.drift (table_name, resource_id) WHERE resolution = 'open';
COMMENT ON TABLE infra.drift IS 'Differences between the rows and AWS found by sync, and how each was resolved';

-- adopt: rows take the cloud's values (default). revert: the desired values
-- are applied back to AWS. report: rows keep the desired values and the
-- drift stays open until a commit resolves it.
CREATE TABLE infra.drift_policy (
    table_name text NOT NULL,
    tag_key    text NOT NULL DEFAULT '',
    tag_value  text NOT NULL DEFAULT '',
    policy     text NOT NULL CHECK (policy IN ('adopt', 'revert', 'report')),
    PRIMARY KEY (table_name, tag_key, tag_value)
);
COMMENT ON TABLE infra.drift_policy IS 'How sync handles drift per table (tag_key/tag_value narrow it to tagged resources)';
GRANT INSERT, UPDATE, DELETE ON infra.drift_policy TO PUBLIC;

CREATE TABLE infra.sync_status (
    region         text NOT NULL,
    table_name     text NOT NULL,
    last_started   timestamptz,
    last_finished  timestamptz,
    duration_ms    int,
    resources_seen int,
    api_calls      int,
    last_error     text,
    PRIMARY KEY (region, table_name)
);
COMMENT ON TABLE infra.sync_status IS 'One row per region and resource table: the last sync round';

-- infrasql runs the sync when a statement calls this (the proxy sees the
-- call and syncs before the statement runs); the function then reports.
CREATE FUNCTION infra.sync(table_name text DEFAULT NULL, region text DEFAULT NULL) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'tables', count(*),
        'resources_seen', coalesce(sum(s.resources_seen), 0),
        'errors', coalesce(jsonb_agg(jsonb_build_object('table', s.table_name, 'region', s.region, 'error', s.last_error))
                           FILTER (WHERE s.last_error IS NOT NULL), '[]'::jsonb),
        'open_drift', (SELECT count(*) FROM infra.drift d WHERE d.resolution = 'open'
                       AND ($1 IS NULL OR d.table_name = $1) AND ($2 IS NULL OR d.region = $2)))
    FROM infra.sync_status s
    WHERE ($1 IS NULL OR s.table_name = $1) AND ($2 IS NULL OR s.region = $2)
$$;
