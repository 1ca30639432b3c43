-- Sets of references as join tables (issue #10). An instance's security
-- groups were one column (security_group_id) plus a reported JSON list
-- (security_group_ids) with a hidden tag to tell them apart; now they are
-- rows of aws.instance_security_group, one per group, so SQL joins work,
-- foreign keys follow provisional ids (ON UPDATE CASCADE) and drift is
-- visible per membership. The engine folds a join table's row changes into
-- its owner's plan step (one RunInstances with the whole set, or one
-- ModifyInstanceAttribute): the join rows make no AWS calls of their own.

-- Locks the owner's row before a join row of it changes, so two
-- transactions changing one owner's set serialise at the statement, and the
-- second one's COMMIT reads the set with the first one's rows in it.
-- Arguments: the owner's table and its id column (the join table's too).
CREATE FUNCTION infra.lock_set_owner() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
DECLARE
    owner text;
BEGIN
    FOREACH owner IN ARRAY ARRAY[
        CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) ->> TG_ARGV[1] END,
        CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) ->> TG_ARGV[1] END] LOOP
        IF owner IS NOT NULL THEN
            EXECUTE format('SELECT 1 FROM %s WHERE %I = $1 FOR UPDATE', TG_ARGV[0], TG_ARGV[1])
                USING owner;
        END IF;
    END LOOP;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$$;

-- A join table infrasql manages: its changes reach infra.change (capture),
-- a write that bypasses infrasql is refused at commit (IX100), and the
-- owner's row is locked first. The owner column must be the owner table's
-- AWS id column.
CREATE FUNCTION infra.manage_set(tbl regclass, owner regclass, owner_column text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE TRIGGER infrasql_lock_owner BEFORE INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION infra.lock_set_owner(%L, %L)', tbl, owner::text, owner_column);
    EXECUTE format('CREATE TRIGGER infrasql_set_capture AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION infra.capture()', tbl);
    EXECUTE format('CREATE CONSTRAINT TRIGGER infrasql_commit_path AFTER INSERT OR UPDATE OR DELETE ON %s DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION infra.require_commit_path()', tbl);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO PUBLIC', tbl);
END
$$;

CREATE TABLE aws.instance_security_group (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance_id text NOT NULL
                REFERENCES aws.instance (instance_id) ON UPDATE CASCADE ON DELETE CASCADE,
    group_id    text NOT NULL
                REFERENCES aws.security_group (group_id) ON UPDATE CASCADE,
    UNIQUE (instance_id, group_id)
);
CREATE INDEX instance_security_group_group_id ON aws.instance_security_group (group_id);
COMMENT ON TABLE aws.instance_security_group IS 'The security groups of each instance, one row per group (the set security_group_ids of aws.instance): INSERT or DELETE a row to attach or detach a group in place; rows inserted with the instance in one transaction make one launch with every group';
COMMENT ON COLUMN aws.instance_security_group.id IS 'The row''s own key, assigned by the database';
COMMENT ON COLUMN aws.instance_security_group.instance_id IS 'The instance (its rows go when it is deleted)';
COMMENT ON COLUMN aws.instance_security_group.group_id IS 'A security group attached to it';
SELECT infra.manage_set('aws.instance_security_group', 'aws.instance', 'instance_id');

-- What 0530 checked on the instance's own group column, now per join row:
-- the group in the instance's region and in its subnet's VPC.
CREATE FUNCTION infra.check_instance_group() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    inst record;
    grp  record;
BEGIN
    IF infra.is_engine() OR infra.is_sealed() THEN
        RETURN NEW;
    END IF;
    SELECT x.name, x.region, x.subnet_id, s.name AS subnet_name, s.vpc_id INTO inst
      FROM aws.instance x LEFT JOIN aws.subnet s ON s.subnet_id = x.subnet_id
     WHERE x.instance_id = NEW.instance_id;
    SELECT g.name, g.region, g.vpc_id INTO grp
      FROM aws.security_group g WHERE g.group_id = NEW.group_id;
    IF inst.region IS NOT NULL AND grp.region IS NOT NULL AND inst.region <> grp.region THEN
        RAISE EXCEPTION '%: it is in region %, but % is in region %',
                infra.label('instance', inst.name, NEW.instance_id), inst.region,
                infra.label('security group', grp.name, NEW.group_id), grp.region
            USING ERRCODE = '23514',
                  DETAIL = 'AWS resources use only resources of their own region; AWS would answer that it does not exist.',
                  HINT = format('Choose a security group of region %s.', inst.region);
    END IF;
    IF inst.vpc_id IS NOT NULL AND grp.vpc_id IS NOT NULL AND inst.vpc_id <> grp.vpc_id THEN
        RAISE EXCEPTION '%: % is in VPC %, but % is in VPC %',
                infra.label('instance', inst.name, NEW.instance_id),
                infra.label('subnet', inst.subnet_name, inst.subnet_id), inst.vpc_id,
                infra.label('security group', grp.name, NEW.group_id), grp.vpc_id
            USING ERRCODE = '23514',
                  DETAIL = 'AWS refuses an instance whose subnet and security group belong to different VPCs.',
                  HINT = format('Choose a security group of VPC %s.', inst.vpc_id);
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER infrasql_local_group BEFORE INSERT OR UPDATE ON aws.instance_security_group
    FOR EACH ROW EXECUTE FUNCTION infra.check_instance_group();

-- Move the data: every group an instance had (its own and every reported
-- one) becomes a join row, for groups that are rows (the foreign key).
-- As the engine, so nothing is captured as a change to apply.
ALTER TABLE aws.instance_security_group DISABLE TRIGGER USER;
INSERT INTO aws.instance_security_group (instance_id, group_id)
SELECT DISTINCT i.instance_id, g.group_id
  FROM aws.instance i
  CROSS JOIN LATERAL (
      SELECT i.security_group_id AS group_id
      UNION
      SELECT jsonb_array_elements_text(
          CASE WHEN jsonb_typeof(i.security_group_ids) = 'array' THEN i.security_group_ids ELSE '[]' END)
  ) m
  JOIN aws.security_group g ON g.group_id = m.group_id
ON CONFLICT DO NOTHING;
ALTER TABLE aws.instance_security_group ENABLE TRIGGER USER;

DROP TRIGGER infrasql_local_region_group ON aws.instance;
DROP TRIGGER infrasql_local_vpc ON aws.instance;
DROP INDEX IF EXISTS aws.instance_security_group_id;
ALTER TABLE aws.instance DROP COLUMN security_group_id, DROP COLUMN security_group_ids;
DELETE FROM infra.resource_column
 WHERE table_name = 'aws.instance' AND column_name IN ('security_group_id', 'security_group_ids');
