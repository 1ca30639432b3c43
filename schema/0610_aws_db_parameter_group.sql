-- aws.db_parameter_group: see providers/aws/src/rds/db_parameter_group.rs
-- for column kinds. The name is the id, chosen by the user, in lower case
-- as RDS keeps it (AWS checks the rest: sync imports its default.* groups); AWS has no rename (refused at the statement) and no call
-- that changes the family or the description (a change replaces the group).
-- Its parameters are rows of aws.db_parameter (0620).
CREATE TABLE aws.db_parameter_group (
    db_parameter_group_name text NOT NULL UNIQUE
                            CHECK (char_length(db_parameter_group_name) BETWEEN 1 AND 255
                                   AND db_parameter_group_name = lower(db_parameter_group_name)),
    region                  text NOT NULL DEFAULT infra.default_region(),
    family                  text NOT NULL CHECK (char_length(family) BETWEEN 1 AND 255),
    description             text NOT NULL CHECK (char_length(description) BETWEEN 1 AND 255),
    tags                    jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(tags) = 'object'),
    arn                     text,
    synced_at               timestamptz
);
SELECT infra.manage('aws.db_parameter_group');
CREATE TRIGGER infrasql_fixed_name BEFORE UPDATE ON aws.db_parameter_group
    FOR EACH ROW EXECUTE FUNCTION infra.refuse_rename('db_parameter_group_name', 'DB parameter group');
