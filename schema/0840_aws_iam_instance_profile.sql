-- aws.iam_instance_profile: see providers/aws-iam/src/instance_profile.rs.
-- The name is the id, chosen by the user; IAM has no rename. IAM is global.
CREATE TABLE aws.iam_instance_profile (
    instance_profile_name text NOT NULL UNIQUE
                          CHECK (instance_profile_name ~ '^[A-Za-z0-9+=,.@_-]{1,128}$'),
    region                text NOT NULL DEFAULT 'global' CHECK (region = 'global'),
    path                  text NOT NULL DEFAULT '/' CHECK (path ~ '^/(.*/)?$'),
    role_name             text
                          REFERENCES aws.iam_role (role_name) ON UPDATE CASCADE,
    tags                  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(tags) = 'object'),
    arn                   text,
    instance_profile_id   text,
    create_date           timestamptz,
    synced_at             timestamptz
);
CREATE INDEX iam_instance_profile_role_name ON aws.iam_instance_profile (role_name);
SELECT infra.manage('aws.iam_instance_profile');
CREATE TRIGGER infrasql_fixed_name BEFORE UPDATE ON aws.iam_instance_profile
    FOR EACH ROW EXECUTE FUNCTION infra.refuse_rename('instance_profile_name', 'IAM instance profile');
