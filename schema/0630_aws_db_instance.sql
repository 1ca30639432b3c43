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

-- What AWS would refuse, or what would lose data, when a database goes
-- away: a DELETE, or an UPDATE that forces a replace (the old database is
-- deleted). Refused at the statement, before any AWS call.
--
-- The commit path deletes with the row as it was before the transaction
-- (the netted change's before image), so that is the row checked here: a
-- choice made by an UPDATE earlier in the same transaction does not reach
-- DeleteDBInstance, and the error says to COMMIT it first. A row inserted
-- in this transaction never reached AWS: nothing to refuse.
-- Skipped for the engine (sync deletes the rows of vanished databases) and
-- for the sealed commit path.
CREATE FUNCTION infra.check_db_instance_removal() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    first record;
    b     jsonb := to_jsonb(OLD);
    what  text;
BEGIN
    IF infra.is_engine() OR infra.is_sealed() THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        IF NEW.engine IS NOT DISTINCT FROM OLD.engine
           AND NEW.master_username IS NOT DISTINCT FROM OLD.master_username
           AND NEW.storage_encrypted IS NOT DISTINCT FROM OLD.storage_encrypted
           AND NEW.region IS NOT DISTINCT FROM OLD.region THEN
            RETURN NEW;
        END IF;
    END IF;
    SELECT c.op, c.old_row INTO first
      FROM infra.change c
     WHERE c.xid = pg_current_xact_id_if_assigned()
       AND c.table_name = 'aws.db_instance'
       AND coalesce(c.old_row, c.new_row) -> 'id' = b -> 'id'
     ORDER BY c.seq LIMIT 1;
    IF first.op = 'I' THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    ELSIF first.op IS NOT NULL THEN
        b := first.old_row;
    END IF;
    what := CASE WHEN TG_OP = 'DELETE' THEN 'deleted'
                 ELSE 'replaced (the old database is deleted)' END;
    IF (b ->> 'deletion_protection')::boolean THEN
        RAISE EXCEPTION 'DB instance % has deletion protection on, so it cannot be %',
                b ->> 'db_instance_identifier', what
            USING ERRCODE = '55000',
                  DETAIL = 'AWS refuses to delete a DB instance while deletion_protection is on.',
                  HINT = 'UPDATE aws.db_instance SET deletion_protection = false and COMMIT first, then delete it.';
    END IF;
    IF NOT (b ->> 'skip_final_snapshot')::boolean AND b ->> 'final_snapshot_identifier' IS NULL THEN
        RAISE EXCEPTION 'DB instance % cannot be % without a choice about its final snapshot',
                b ->> 'db_instance_identifier', what
            USING ERRCODE = '55000',
                  DETAIL = 'Deleting a database loses its data unless a final snapshot is taken; infrasql does not choose for you.',
                  HINT = 'UPDATE aws.db_instance SET final_snapshot_identifier = ''<snapshot name>'' (keep a snapshot) or SET skip_final_snapshot = true (no snapshot), and COMMIT first.';
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.db_instance_identifier = OLD.db_instance_identifier THEN
        RAISE EXCEPTION 'DB instance %: a change of engine, master_username, storage_encrypted or region replaces it, and the new one needs another identifier',
                OLD.db_instance_identifier
            USING ERRCODE = '55000',
                  DETAIL = 'The new database is created before the old one is deleted, and AWS refuses two DB instances with one identifier.',
                  HINT = 'Set a new db_instance_identifier in the same UPDATE.';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$$;
CREATE TRIGGER infrasql_db_instance_removal BEFORE UPDATE OR DELETE ON aws.db_instance
    FOR EACH ROW EXECUTE FUNCTION infra.check_db_instance_removal();
COMMENT ON FUNCTION infra.check_db_instance_removal() IS 'Refuses, before any AWS call, the delete (or replace) of a DB instance with deletion protection on or without a final-snapshot choice';
