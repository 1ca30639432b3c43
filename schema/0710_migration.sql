-- The record of migration files `infrasql apply` has applied (issue #11).
-- The client inserts a file's row in the file's own transaction, so the
-- record commits exactly when the file's changes do: a crash in between
-- cannot apply a file twice, and a failing file leaves no record.
--
-- The apply id is made by the engine at COMMIT, after the client's last
-- statement, so the row keeps its transaction id instead and the view joins
-- it to infra.apply (whose xid is the committing transaction's).
CREATE TABLE infra.migration_file (
    name       text PRIMARY KEY CHECK (name <> ''),
    checksum   text NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),
    applied_at timestamptz NOT NULL DEFAULT now(),
    applied_by text NOT NULL DEFAULT session_user,
    xid        xid8 NOT NULL DEFAULT pg_current_xact_id()
);
COMMENT ON TABLE infra.migration_file IS 'Migration files applied by infrasql apply, written in the file''s own transaction (read infra.migration for the apply id)';
COMMENT ON COLUMN infra.migration_file.name IS 'The file''s base name (0001_network.sql); files are applied in name order';
COMMENT ON COLUMN infra.migration_file.checksum IS 'sha256 of the file''s content, hex; a recorded file whose content changed is refused unless infrasql apply --allow-changed (which records the new checksum without running the file again)';
COMMENT ON COLUMN infra.migration_file.applied_at IS 'When the file''s transaction ran';
COMMENT ON COLUMN infra.migration_file.applied_by IS 'The database user that applied it';
COMMENT ON COLUMN infra.migration_file.xid IS 'The file''s transaction, joined to infra.apply.xid for the apply id';
-- Until roles exist every user may apply migrations. UPDATE is for
-- --allow-changed; no DELETE: forgetting a file would apply it again.
GRANT SELECT, INSERT, UPDATE ON infra.migration_file TO PUBLIC;

-- The join below, and every other lookup of an apply by its transaction.
CREATE INDEX apply_xid ON infra.apply (xid);

CREATE VIEW infra.migration AS
SELECT m.name, m.checksum, m.applied_at, m.applied_by, a.apply_id
FROM infra.migration_file m
LEFT JOIN LATERAL (
    -- One transaction has at most one apply that committed; a refused one
    -- rolled the migration row back with it.
    SELECT x.apply_id FROM infra.apply x
    WHERE x.xid = m.xid
    ORDER BY x.started_at DESC
    LIMIT 1
) a ON true;
COMMENT ON VIEW infra.migration IS 'Migration files applied by infrasql apply, with the apply that changed the cloud for each';
COMMENT ON COLUMN infra.migration.name IS 'The file''s base name (0001_network.sql)';
COMMENT ON COLUMN infra.migration.checksum IS 'sha256 of the file''s content, hex';
COMMENT ON COLUMN infra.migration.applied_at IS 'When the file''s transaction ran';
COMMENT ON COLUMN infra.migration.applied_by IS 'The database user that applied it';
COMMENT ON COLUMN infra.migration.apply_id IS 'The apply of the file''s COMMIT (infra.apply); NULL when the file changed no cloud resource';
GRANT SELECT ON infra.migration TO PUBLIC;
