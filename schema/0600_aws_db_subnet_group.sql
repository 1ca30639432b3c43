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
