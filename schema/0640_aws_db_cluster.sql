-- aws.db_cluster (Aurora): see providers/aws/src/rds/db_cluster.rs for
-- column kinds. apply_immediately, skip_final_snapshot and
-- final_snapshot_identifier are the user's instructions: never listed, so
-- they never drift, and an UPDATE of only them makes no call.
CREATE TABLE aws.db_cluster (
    db_cluster_identifier       text NOT NULL UNIQUE
                                CHECK (db_cluster_identifier ~ '^[a-z][a-z0-9]*(-[a-z0-9]+)*$'
                                       AND char_length(db_cluster_identifier) <= 63),
    region                      text NOT NULL DEFAULT infra.default_region(),
    engine                      text NOT NULL DEFAULT 'aurora-postgresql'
                                CHECK (engine IN ('aurora-postgresql', 'aurora-mysql')),
    engine_version              text,
    master_username             text,
    master_user_password        text,
    manage_master_user_password boolean NOT NULL DEFAULT false,
    db_subnet_group_name        text REFERENCES aws.db_subnet_group (db_subnet_group_name) ON UPDATE CASCADE,
    port                        integer CHECK (port BETWEEN 1150 AND 65535),
    backup_retention_period     integer CHECK (backup_retention_period BETWEEN 1 AND 35),
    deletion_protection         boolean NOT NULL DEFAULT false,
    storage_encrypted           boolean NOT NULL DEFAULT false,
    database_name               text,
    apply_immediately           boolean NOT NULL DEFAULT true,
    skip_final_snapshot         boolean NOT NULL DEFAULT false,
    final_snapshot_identifier   text CHECK (char_length(final_snapshot_identifier) BETWEEN 1 AND 255),
    tags                        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(tags) = 'object'),
    endpoint                    text,
    reader_endpoint             text,
    status                      text,
    arn                         text,
    resource_id                 text,
    master_user_secret_arn      text,
    create_time                 timestamptz,
    synced_at                   timestamptz
);
SELECT infra.manage('aws.db_cluster');

CREATE TABLE aws.db_cluster_security_group (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    db_cluster_identifier text NOT NULL
                          REFERENCES aws.db_cluster (db_cluster_identifier)
                          ON UPDATE CASCADE ON DELETE CASCADE,
    group_id              text NOT NULL
                          REFERENCES aws.security_group (group_id) ON UPDATE CASCADE,
    UNIQUE (db_cluster_identifier, group_id)
);
CREATE INDEX db_cluster_security_group_group_id ON aws.db_cluster_security_group (group_id);
COMMENT ON TABLE aws.db_cluster_security_group IS 'The VPC security groups of each DB cluster, one row per group (the set vpc_security_group_ids of aws.db_cluster): INSERT or DELETE a row to attach or detach a group in place; rows inserted with the cluster in one transaction make one CreateDBCluster with every group';
COMMENT ON COLUMN aws.db_cluster_security_group.id IS 'The row''s own key, assigned by the database';
COMMENT ON COLUMN aws.db_cluster_security_group.db_cluster_identifier IS 'The DB cluster (its rows go when it is deleted)';
COMMENT ON COLUMN aws.db_cluster_security_group.group_id IS 'A security group attached to it';
SELECT infra.manage_set('aws.db_cluster_security_group', 'aws.db_cluster', 'db_cluster_identifier');

-- Deleting a cluster (or replacing it, which deletes the old one) needs an
-- explicit choice about its data, and deletion protection off: refused
-- here, before COMMIT and so before any AWS call, naming the column to set.
-- The commit path deletes with the row as it was before the transaction
-- (its first change's old row), so a choice made earlier in the same
-- transaction would not reach AWS: only a committed choice counts, and the
-- error says so. Not for the engine (sync's writes, undo), nor for a row
-- created in this transaction (nothing exists in AWS yet).
CREATE FUNCTION infra.check_db_cluster_delete() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    first record;
    was   jsonb := to_jsonb(OLD);
    now_  jsonb := to_jsonb(OLD);
    what  text;
BEGIN
    IF infra.is_engine() THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        now_ := to_jsonb(NEW);
        what := 'replacing';
    ELSE
        what := 'deleting';
    END IF;
    SELECT c.op, c.old_row INTO first FROM infra.change c
     WHERE c.xid = pg_current_xact_id() AND c.table_name = 'aws.db_cluster'
       AND coalesce(c.old_row, c.new_row) ->> 'id' = OLD.id::text
     ORDER BY c.seq LIMIT 1;
    IF first.op = 'I' THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    ELSIF first.op IS NOT NULL THEN
        was := first.old_row;
    END IF;
    IF (was ->> 'deletion_protection')::boolean THEN
        RAISE EXCEPTION 'DB cluster %: % it is refused while deletion protection is on', OLD.db_cluster_identifier, what
            USING ERRCODE = '55000',
                  DETAIL = 'AWS refuses to delete a DB cluster with deletion protection on; nothing was sent to AWS.',
                  HINT = format('UPDATE aws.db_cluster SET deletion_protection = false WHERE db_cluster_identifier = %L and COMMIT first%s.',
                                OLD.db_cluster_identifier,
                                CASE WHEN NOT (now_ ->> 'deletion_protection')::boolean
                                     THEN ' (turning it off in the same transaction does not count: the change must be made before the delete)' ELSE '' END);
    END IF;
    IF NOT coalesce((was ->> 'skip_final_snapshot')::boolean, false)
       AND was ->> 'final_snapshot_identifier' IS NULL THEN
        RAISE EXCEPTION 'DB cluster %: % it needs a choice about its data: skip_final_snapshot or final_snapshot_identifier', OLD.db_cluster_identifier, what
            USING ERRCODE = '55000',
                  DETAIL = 'Neither column is set, so the cluster''s data would be lost without a decision; nothing was sent to AWS.',
                  HINT = format('UPDATE aws.db_cluster SET final_snapshot_identifier = ''<snapshot name>'' (or skip_final_snapshot = true) WHERE db_cluster_identifier = %L and COMMIT first%s.',
                                OLD.db_cluster_identifier,
                                CASE WHEN coalesce((now_ ->> 'skip_final_snapshot')::boolean, false)
                                       OR now_ ->> 'final_snapshot_identifier' IS NOT NULL
                                     THEN ' (a choice made in the same transaction does not count: the commit path deletes with the row as it was before it)' ELSE '' END);
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.db_cluster_identifier = OLD.db_cluster_identifier THEN
        RAISE EXCEPTION 'DB cluster %: a change of region, engine, master_username, db_subnet_group_name, storage_encrypted or database_name replaces it, and the new one needs another identifier',
                OLD.db_cluster_identifier
            USING ERRCODE = '55000',
                  DETAIL = 'The new cluster is created before the old one is deleted, and AWS refuses two DB clusters with one identifier.',
                  HINT = 'Set a new db_cluster_identifier in the same UPDATE.';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$$;
COMMENT ON FUNCTION infra.check_db_cluster_delete() IS 'Refuses, before any AWS call, the delete (or replace) of a DB cluster with deletion protection on or without a committed final-snapshot choice';
CREATE TRIGGER infrasql_check_delete BEFORE DELETE ON aws.db_cluster
    FOR EACH ROW EXECUTE FUNCTION infra.check_db_cluster_delete();
-- A change of a replace-on-change column deletes the old cluster too.
CREATE TRIGGER infrasql_check_replace BEFORE UPDATE ON aws.db_cluster
    FOR EACH ROW
    WHEN (OLD.region IS DISTINCT FROM NEW.region
          OR OLD.engine IS DISTINCT FROM NEW.engine
          OR OLD.master_username IS DISTINCT FROM NEW.master_username
          OR OLD.db_subnet_group_name IS DISTINCT FROM NEW.db_subnet_group_name
          OR OLD.storage_encrypted IS DISTINCT FROM NEW.storage_encrypted
          OR OLD.database_name IS DISTINCT FROM NEW.database_name)
    EXECUTE FUNCTION infra.check_db_cluster_delete();

-- Instances join a cluster through db_instance.db_cluster_identifier
-- (CreateDBInstance's DBClusterIdentifier). A rename of the cluster reaches
-- it by ON UPDATE CASCADE (AWS renames the membership itself: no call);
-- AWS cannot move an instance to another cluster, so a change made by the
-- user is refused at the statement. A cascade runs inside the foreign
-- key's own trigger, so its update arrives here one trigger level deeper.
ALTER TABLE aws.db_instance ADD COLUMN db_cluster_identifier text
    REFERENCES aws.db_cluster (db_cluster_identifier) ON UPDATE CASCADE;
CREATE INDEX db_instance_db_cluster_identifier ON aws.db_instance (db_cluster_identifier);
CREATE FUNCTION infra.refuse_cluster_move() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    IF NEW.db_cluster_identifier IS DISTINCT FROM OLD.db_cluster_identifier
       AND pg_trigger_depth() = 1 AND NOT infra.is_engine() THEN
        RAISE EXCEPTION 'DB instance %: db_cluster_identifier cannot be changed', OLD.db_instance_identifier
            USING ERRCODE = '428C9',
                  DETAIL = 'AWS has no call that moves a DB instance into another cluster (or out of one).',
                  HINT = 'INSERT a new DB instance with the other db_cluster_identifier and DELETE this one.';
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION infra.refuse_cluster_move() IS 'Refuses a user''s change of a DB instance''s cluster (a rename of the cluster, by cascade, passes)';
CREATE TRIGGER infrasql_fixed_cluster BEFORE UPDATE OF db_cluster_identifier ON aws.db_instance
    FOR EACH ROW EXECUTE FUNCTION infra.refuse_cluster_move();

-- 0630's refusal, with what a cluster member changes: its data is the
-- cluster's (AWS takes no final snapshot of a member), so deleting one
-- needs no final-snapshot choice.
CREATE OR REPLACE FUNCTION infra.check_db_instance_removal() RETURNS trigger
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
    IF NOT (b ->> 'skip_final_snapshot')::boolean AND b ->> 'final_snapshot_identifier' IS NULL
       AND b ->> 'db_cluster_identifier' IS NULL THEN
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
