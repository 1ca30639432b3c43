-- aws.db_instance: an RDS database instance (issue #10); column kinds and
-- docs in providers/aws/src/rds/db_instance.rs (COMMENTs on its columns are
-- written from there at start-up; the join table's are here).
--
-- The identifier is chosen by the user, so it is the id from INSERT on.
-- AWS keeps identifiers in lower case, hence the CHECK: a mixed-case name
-- would come back from the listing as another name.
-- A group left NULL is AWS's default: written back as NULL at COMMIT (the
-- default group need not be a row yet), and sync then adopts it.
-- apply_immediately, skip_final_snapshot and final_snapshot_identifier are
-- the user's instructions, not AWS state: the listing never reports them.
CREATE TABLE aws.db_instance (
    db_instance_identifier      text NOT NULL UNIQUE
                                CHECK (db_instance_identifier ~ '^[a-z][a-z0-9-]{0,62}$'
                                       AND db_instance_identifier !~ '--|-$'),
    region                      text NOT NULL DEFAULT infra.default_region(),
    engine                      text NOT NULL CHECK (char_length(engine) > 0),
    engine_version              text,
    db_instance_class           text NOT NULL CHECK (db_instance_class ~ '^db\.[a-z0-9-]+\.[a-z0-9-]+$'),
    allocated_storage           integer CHECK (allocated_storage > 0),
    storage_type                text,
    storage_encrypted           boolean,
    master_username             text CHECK (char_length(master_username) BETWEEN 1 AND 128),
    master_user_password        text,
    manage_master_user_password boolean,
    db_subnet_group_name        text
                                REFERENCES aws.db_subnet_group (db_subnet_group_name) ON UPDATE CASCADE,
    db_parameter_group_name     text
                                REFERENCES aws.db_parameter_group (db_parameter_group_name) ON UPDATE CASCADE,
    publicly_accessible         boolean,
    multi_az                    boolean,
    backup_retention_period     integer CHECK (backup_retention_period BETWEEN 0 AND 35),
    deletion_protection         boolean NOT NULL DEFAULT false,
    apply_immediately           boolean NOT NULL DEFAULT true,
    skip_final_snapshot         boolean NOT NULL DEFAULT false,
    final_snapshot_identifier   text
                                CHECK (final_snapshot_identifier ~ '^[A-Za-z][A-Za-z0-9-]{0,254}$'
                                       AND final_snapshot_identifier !~ '--|-$'),
    tags                        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(tags) = 'object'),
    endpoint_address            text,
    endpoint_port               integer,
    status                      text,
    arn                         text,
    resource_id                 text,
    availability_zone           text,
    create_time                 timestamptz,
    pending_modified_values     jsonb,
    master_user_secret_arn      text,
    synced_at                   timestamptz,
    -- AWS refuses both at once (InvalidParameterCombination).
    CHECK (NOT (master_user_password IS NOT NULL AND manage_master_user_password))
);
CREATE INDEX db_instance_db_subnet_group_name ON aws.db_instance (db_subnet_group_name);
CREATE INDEX db_instance_db_parameter_group_name ON aws.db_instance (db_parameter_group_name);
SELECT infra.manage('aws.db_instance');
-- Its groups in its own region (0530's check): AWS would say they do not exist.
CREATE TRIGGER infrasql_local_region_subnet_group BEFORE INSERT OR UPDATE ON aws.db_instance
    FOR EACH ROW EXECUTE FUNCTION infra.check_same_region(
        'db_subnet_group_name', 'aws.db_subnet_group', 'db_subnet_group_name');
CREATE TRIGGER infrasql_local_region_parameter_group BEFORE INSERT OR UPDATE ON aws.db_instance
    FOR EACH ROW EXECUTE FUNCTION infra.check_same_region(
        'db_parameter_group_name', 'aws.db_parameter_group', 'db_parameter_group_name');

CREATE TABLE aws.db_instance_security_group (
    id                     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    db_instance_identifier text NOT NULL
                           REFERENCES aws.db_instance (db_instance_identifier)
                           ON UPDATE CASCADE ON DELETE CASCADE,
    group_id               text NOT NULL
                           REFERENCES aws.security_group (group_id) ON UPDATE CASCADE,
    UNIQUE (db_instance_identifier, group_id)
);
CREATE INDEX db_instance_security_group_group_id ON aws.db_instance_security_group (group_id);
COMMENT ON TABLE aws.db_instance_security_group IS 'The VPC security groups of each DB instance, one row per group (the set vpc_security_group_ids of aws.db_instance): INSERT or DELETE a row to attach or detach a group in place (ModifyDBInstance with the whole set); rows inserted with the instance in one transaction make one CreateDBInstance with every group';
COMMENT ON COLUMN aws.db_instance_security_group.id IS 'The row''s own key, assigned by the database';
COMMENT ON COLUMN aws.db_instance_security_group.db_instance_identifier IS 'The DB instance (its rows go when it is deleted, and follow a rename)';
COMMENT ON COLUMN aws.db_instance_security_group.group_id IS 'A VPC security group attached to it';
SELECT infra.manage_set('aws.db_instance_security_group', 'aws.db_instance', 'db_instance_identifier');

-- What AWS would refuse, or what would lose data, when a database (a DB
-- instance here, a DB cluster in 0640) goes away: a DELETE, or an UPDATE of
-- a column that replaces it (the old one is deleted; the trigger's WHEN
-- clause names those columns). Refused at the statement, before any AWS
-- call, naming the column to set.
--
-- The commit path deletes with the row as it was before the transaction
-- (the netted change's before image), so that is the row checked here: a
-- choice made earlier in the same transaction would not reach AWS, and the
-- error says to COMMIT it first. A row inserted in this transaction never
-- reached AWS: nothing to refuse. Skipped for the engine (sync deletes the
-- rows of vanished databases) and for the sealed commit path.
-- Arguments: what AWS calls it, its name column, and (optional) a column
-- whose value exempts it from the final-snapshot choice (an instance in a
-- cluster: its data is the cluster's).
CREATE FUNCTION infra.check_db_removal() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    kind    text := TG_ARGV[0];
    namecol text := TG_ARGV[1];
    member  text := TG_ARGV[2];
    tbl     text := TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME;
    first   record;
    was     jsonb := to_jsonb(OLD);
    now_    jsonb := CASE WHEN TG_OP = 'UPDATE' THEN to_jsonb(NEW) ELSE to_jsonb(OLD) END;
    name    text := to_jsonb(OLD) ->> TG_ARGV[1];
    what    text := CASE WHEN TG_OP = 'DELETE' THEN 'deleted'
                         ELSE 'replaced (the old one is deleted)' END;
BEGIN
    IF infra.is_engine() OR infra.is_sealed() THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    SELECT c.op, c.old_row INTO first
      FROM infra.change c
     WHERE c.xid = pg_current_xact_id_if_assigned()
       AND c.table_name = tbl
       AND coalesce(c.old_row, c.new_row) -> 'id' = was -> 'id'
     ORDER BY c.seq LIMIT 1;
    IF first.op = 'I' THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    ELSIF first.op IS NOT NULL THEN
        was := first.old_row;
    END IF;
    IF coalesce((was ->> 'deletion_protection')::boolean, false) THEN
        RAISE EXCEPTION '% %: deletion protection is on, so it cannot be %', kind, name, what
            USING ERRCODE = '55000',
                  DETAIL = format('AWS refuses to delete a %s while deletion_protection is on; nothing was sent to AWS.', kind),
                  HINT = format('UPDATE %s SET deletion_protection = false WHERE %I = %L and COMMIT first, then delete it%s.',
                                tbl, namecol, name,
                                CASE WHEN NOT coalesce((now_ ->> 'deletion_protection')::boolean, false)
                                     THEN ' (turning it off in the same transaction does not count: the delete uses the row as it was before it)'
                                     ELSE '' END);
    END IF;
    IF NOT coalesce((was ->> 'skip_final_snapshot')::boolean, false)
       AND was ->> 'final_snapshot_identifier' IS NULL
       AND (member IS NULL OR was ->> member IS NULL) THEN
        RAISE EXCEPTION '% % cannot be % without a choice about its data: skip_final_snapshot or final_snapshot_identifier',
                kind, name, what
            USING ERRCODE = '55000',
                  DETAIL = 'Deleting a database loses its data unless a final snapshot is taken; infrasql does not choose for you, and nothing was sent to AWS.',
                  HINT = format('UPDATE %s SET final_snapshot_identifier = ''<snapshot name>'' (keep a snapshot) or skip_final_snapshot = true (none) WHERE %I = %L, and COMMIT first%s.',
                                tbl, namecol, name,
                                CASE WHEN coalesce((now_ ->> 'skip_final_snapshot')::boolean, false)
                                       OR now_ ->> 'final_snapshot_identifier' IS NOT NULL
                                     THEN ' (a choice made in the same transaction does not count: the delete uses the row as it was before it)'
                                     ELSE '' END);
    END IF;
    IF TG_OP = 'UPDATE' AND now_ ->> namecol = name THEN
        RAISE EXCEPTION '% %: this change replaces it, and the new one needs another name', kind, name
            USING ERRCODE = '55000',
                  DETAIL = format('The new %s is created before the old one is deleted, and AWS refuses two with one name.', kind),
                  HINT = format('Set a new %I in the same UPDATE.', namecol);
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$$;
COMMENT ON FUNCTION infra.check_db_removal() IS 'Refuses, before any AWS call, the delete (or replace) of a database with deletion protection on or without a committed final-snapshot choice';
CREATE TRIGGER infrasql_db_delete BEFORE DELETE ON aws.db_instance
    FOR EACH ROW EXECUTE FUNCTION infra.check_db_removal('DB instance', 'db_instance_identifier');
-- A change of a replace-on-change column deletes the old database too.
CREATE TRIGGER infrasql_db_replace BEFORE UPDATE ON aws.db_instance
    FOR EACH ROW
    WHEN (OLD.engine IS DISTINCT FROM NEW.engine
          OR OLD.master_username IS DISTINCT FROM NEW.master_username
          OR OLD.storage_encrypted IS DISTINCT FROM NEW.storage_encrypted
          OR OLD.region IS DISTINCT FROM NEW.region)
    EXECUTE FUNCTION infra.check_db_removal('DB instance', 'db_instance_identifier');
