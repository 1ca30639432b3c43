-- aws.db_subnet_group: see providers/aws/src/rds/db_subnet_group.rs for
-- column kinds. The name is the id, chosen by the user (RDS keeps it in
-- lower case, so only lower case is accepted: AWS would answer with a
-- different name than the row holds; its other rules are AWS's to check:
-- sync must be able to import the groups AWS made, like "default"). AWS
-- has no rename, so a changed name is refused at the statement.
CREATE TABLE aws.db_subnet_group (
    db_subnet_group_name text NOT NULL UNIQUE
                         CHECK (char_length(db_subnet_group_name) BETWEEN 1 AND 255
                                AND db_subnet_group_name = lower(db_subnet_group_name)),
    region               text NOT NULL DEFAULT infra.default_region(),
    description          text NOT NULL CHECK (char_length(description) BETWEEN 1 AND 255),
    tags                 jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(tags) = 'object'),
    vpc_id               text,
    status               text,
    arn                  text,
    synced_at            timestamptz
);
SELECT infra.manage('aws.db_subnet_group');
CREATE TRIGGER infrasql_fixed_name BEFORE UPDATE ON aws.db_subnet_group
    FOR EACH ROW EXECUTE FUNCTION infra.refuse_rename('db_subnet_group_name', 'DB subnet group');

-- Its subnets, one row each (the set subnet_ids), as 0560 did for an
-- instance's security groups: CreateDBSubnetGroup gets the whole set, a
-- changed set is one ModifyDBSubnetGroup with the whole new set.
CREATE TABLE aws.db_subnet_group_subnet (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    db_subnet_group_name text NOT NULL
                         REFERENCES aws.db_subnet_group (db_subnet_group_name)
                         ON UPDATE CASCADE ON DELETE CASCADE,
    subnet_id            text NOT NULL
                         REFERENCES aws.subnet (subnet_id) ON UPDATE CASCADE,
    UNIQUE (db_subnet_group_name, subnet_id)
);
CREATE INDEX db_subnet_group_subnet_subnet_id ON aws.db_subnet_group_subnet (subnet_id);
COMMENT ON TABLE aws.db_subnet_group_subnet IS 'The subnets of each DB subnet group, one row per subnet (the set subnet_ids of aws.db_subnet_group): rows inserted with the group in one transaction make one CreateDBSubnetGroup with every subnet; INSERT or DELETE a row later to change the set in place (ModifyDBSubnetGroup with the whole set). AWS wants subnets of one VPC in at least two availability zones';
COMMENT ON COLUMN aws.db_subnet_group_subnet.id IS 'The row''s own key, assigned by the database';
COMMENT ON COLUMN aws.db_subnet_group_subnet.db_subnet_group_name IS 'The DB subnet group (its rows go when it is deleted)';
COMMENT ON COLUMN aws.db_subnet_group_subnet.subnet_id IS 'A subnet of the group';
SELECT infra.manage_set('aws.db_subnet_group_subnet', 'aws.db_subnet_group', 'db_subnet_group_name');

-- What AWS would refuse for certain, per join row at the statement (as
-- 0560 does for an instance's groups): a subnet of another region than the
-- group, or of another VPC than the group's other subnets. They see the
-- rows as the statement leaves them; the engine's writes report what
-- exists and are not checked.
CREATE FUNCTION infra.check_db_subnet_group_subnet() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    grp   record;
    sub   record;
    other record;
BEGIN
    IF infra.is_engine() OR infra.is_sealed() THEN
        RETURN NEW;
    END IF;
    SELECT g.region INTO grp
      FROM aws.db_subnet_group g WHERE g.db_subnet_group_name = NEW.db_subnet_group_name;
    SELECT s.name, s.region, s.vpc_id INTO sub
      FROM aws.subnet s WHERE s.subnet_id = NEW.subnet_id;
    IF grp.region IS NOT NULL AND sub.region IS NOT NULL AND grp.region <> sub.region THEN
        RAISE EXCEPTION 'DB subnet group %: it is in region %, but % is in region %',
                NEW.db_subnet_group_name, grp.region,
                infra.label('subnet', sub.name, NEW.subnet_id), sub.region
            USING ERRCODE = '23514',
                  DETAIL = 'AWS resources use only resources of their own region; AWS would answer that it does not exist.',
                  HINT = format('Choose a subnet of region %s.', grp.region);
    END IF;
    SELECT s.name, s.subnet_id, s.vpc_id INTO other
      FROM aws.db_subnet_group_subnet j JOIN aws.subnet s ON s.subnet_id = j.subnet_id
     WHERE j.db_subnet_group_name = NEW.db_subnet_group_name AND j.id <> NEW.id
       AND s.vpc_id <> sub.vpc_id
     ORDER BY j.id LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'DB subnet group %: % is in VPC %, but % is in VPC %',
                NEW.db_subnet_group_name,
                infra.label('subnet', sub.name, NEW.subnet_id), sub.vpc_id,
                infra.label('subnet', other.name, other.subnet_id), other.vpc_id
            USING ERRCODE = '23514',
                  DETAIL = 'AWS refuses a DB subnet group whose subnets belong to different VPCs.',
                  HINT = format('Choose subnets of one VPC (%s has the group''s other subnets).', other.vpc_id);
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER infrasql_local_subnet BEFORE INSERT OR UPDATE ON aws.db_subnet_group_subnet
    FOR EACH ROW EXECUTE FUNCTION infra.check_db_subnet_group_subnet();
