-- The infra system schema: what infrasql itself knows and records.
-- Applied once, in a transaction, by the engine role; see src/store/migrate.rs.

CREATE SCHEMA IF NOT EXISTS infra;
COMMENT ON SCHEMA infra IS 'infrasql system objects: plans, applies, drift, sync status';

-- Everyone may read the system tables; only the engine writes them.
GRANT USAGE ON SCHEMA infra TO PUBLIC;
ALTER DEFAULT PRIVILEGES IN SCHEMA infra GRANT SELECT ON TABLES TO PUBLIC;
GRANT SELECT ON infra.schema_migrations TO PUBLIC;

-- One row per running infrasql process, refreshed at start-up.
CREATE TABLE infra.node (
    node_id     uuid PRIMARY KEY,
    hostname    text NOT NULL,
    version     text NOT NULL,
    listen      text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE infra.node IS 'infrasql processes that have served this database';
GRANT SELECT ON infra.node TO PUBLIC;
