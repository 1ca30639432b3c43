-- aws.iam_policy: see providers/aws-iam/src/policy.rs for column kinds. A
-- customer-managed policy; IAM assigns its ARN (the id, provisional until
-- created). Names are unique in the account. IAM is global.
CREATE TABLE aws.iam_policy (
    policy_arn         text NOT NULL UNIQUE DEFAULT infra.provisional_id('iam-policy'),
    region             text NOT NULL DEFAULT 'global' CHECK (region = 'global'),
    policy_name        text NOT NULL UNIQUE
                       CHECK (policy_name ~ '^[A-Za-z0-9+=,.@_-]{1,128}$'),
    path               text NOT NULL DEFAULT '/' CHECK (path ~ '^/(.*/)?$'),
    description        text CHECK (char_length(description) <= 1000),
    policy_document    jsonb NOT NULL CHECK (jsonb_typeof(policy_document) = 'object'),
    tags               jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(tags) = 'object'),
    policy_id          text,
    default_version_id text,
    attachment_count   integer,
    create_date        timestamptz,
    update_date        timestamptz,
    synced_at          timestamptz
);
SELECT infra.manage('aws.iam_policy');
