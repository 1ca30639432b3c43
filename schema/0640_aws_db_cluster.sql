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

-- A DELETE (or replace) needs deletion protection off and a committed
-- final-snapshot choice: 0630's check, as for an instance.
CREATE TRIGGER infrasql_db_delete BEFORE DELETE ON aws.db_cluster
    FOR EACH ROW EXECUTE FUNCTION infra.check_db_removal('DB cluster', 'db_cluster_identifier');
-- A change of a replace-on-change column deletes the old cluster too.
CREATE TRIGGER infrasql_db_replace BEFORE UPDATE ON aws.db_cluster
    FOR EACH ROW
    WHEN (OLD.region IS DISTINCT FROM NEW.region
          OR OLD.engine IS DISTINCT FROM NEW.engine
          OR OLD.master_username IS DISTINCT FROM NEW.master_username
          OR OLD.db_subnet_group_name IS DISTINCT FROM NEW.db_subnet_group_name
          OR OLD.storage_encrypted IS DISTINCT FROM NEW.storage_encrypted
          OR OLD.database_name IS DISTINCT FROM NEW.database_name)
    EXECUTE FUNCTION infra.check_db_removal('DB cluster', 'db_cluster_identifier');

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

-- A cluster member's data is the cluster's (AWS takes no final snapshot of
-- a member), so deleting or replacing one needs no final-snapshot choice.
DROP TRIGGER infrasql_db_delete ON aws.db_instance;
CREATE TRIGGER infrasql_db_delete BEFORE DELETE ON aws.db_instance
    FOR EACH ROW EXECUTE FUNCTION infra.check_db_removal('DB instance', 'db_instance_identifier', 'db_cluster_identifier');
DROP TRIGGER infrasql_db_replace ON aws.db_instance;
CREATE TRIGGER infrasql_db_replace BEFORE UPDATE ON aws.db_instance
    FOR EACH ROW
    WHEN (OLD.engine IS DISTINCT FROM NEW.engine
          OR OLD.master_username IS DISTINCT FROM NEW.master_username
          OR OLD.storage_encrypted IS DISTINCT FROM NEW.storage_encrypted
          OR OLD.region IS DISTINCT FROM NEW.region)
    EXECUTE FUNCTION infra.check_db_removal('DB instance', 'db_instance_identifier', 'db_cluster_identifier');
