-- aws.iam_role: see providers/aws-iam/src/role.rs for column kinds. IAM
-- is global: region is always 'global' (infrasql_provider::GLOBAL_REGION)
-- and sync lists the table once per round. The name is the id, chosen by
-- the user; IAM has no rename, so a changed name is refused at the statement.
CREATE TABLE aws.iam_role (
    role_name            text NOT NULL UNIQUE
                         CHECK (role_name ~ '^[A-Za-z0-9+=,.@_-]{1,64}$'),
    region               text NOT NULL DEFAULT 'global' CHECK (region = 'global'),
    path                 text NOT NULL DEFAULT '/' CHECK (path ~ '^/(.*/)?$'),
    assume_role_policy   jsonb NOT NULL CHECK (jsonb_typeof(assume_role_policy) = 'object'),
    description          text CHECK (char_length(description) <= 1000),
    max_session_duration integer NOT NULL DEFAULT 3600
                         CHECK (max_session_duration BETWEEN 3600 AND 43200),
    tags                 jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(tags) = 'object'),
    arn                  text,
    role_id              text,
    create_date          timestamptz,
    synced_at            timestamptz
);
SELECT infra.manage('aws.iam_role');
CREATE TRIGGER infrasql_fixed_name BEFORE UPDATE ON aws.iam_role
    FOR EACH ROW EXECUTE FUNCTION infra.refuse_rename('role_name', 'IAM role');
