-- aws.db_snapshot: see providers/aws/src/rds/db_snapshot.rs for column kinds.
-- db_instance_identifier deliberately has no foreign key: a snapshot
-- outlives its database, and sync lists the final snapshots of instances
-- deleted long ago. Automated snapshots are listed too (named rds:...).
CREATE TABLE aws.db_snapshot (
    db_snapshot_identifier text NOT NULL UNIQUE
                           CHECK (char_length(db_snapshot_identifier) BETWEEN 1 AND 255),
    region                 text NOT NULL DEFAULT infra.default_region(),
    db_instance_identifier text NOT NULL,
    tags                   jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(tags) = 'object'),
    status                 text,
    snapshot_type          text,
    engine                 text,
    allocated_storage      integer,
    snapshot_create_time   timestamptz,
    arn                    text,
    synced_at              timestamptz
);
SELECT infra.manage('aws.db_snapshot');
-- AWS has no call that renames a snapshot (copy it under the new name).
CREATE TRIGGER infrasql_fixed_name BEFORE UPDATE ON aws.db_snapshot
    FOR EACH ROW EXECUTE FUNCTION infra.refuse_rename('db_snapshot_identifier', 'DB snapshot');
