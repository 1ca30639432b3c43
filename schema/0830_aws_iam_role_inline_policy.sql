-- aws.iam_role_inline_policy: see providers/aws-iam/src/inline_policy.rs.
-- inline_policy_id is synthetic, '<role_name>|<policy_name>', set by the
-- provider when the policy is put.
CREATE TABLE aws.iam_role_inline_policy (
    inline_policy_id text NOT NULL UNIQUE DEFAULT infra.provisional_id('iam-inline-policy'),
    region           text NOT NULL DEFAULT 'global' CHECK (region = 'global'),
    role_name        text NOT NULL
                     REFERENCES aws.iam_role (role_name) ON UPDATE CASCADE,
    policy_name      text NOT NULL CHECK (policy_name ~ '^[A-Za-z0-9+=,.@_-]{1,128}$'),
    policy_document  jsonb NOT NULL CHECK (jsonb_typeof(policy_document) = 'object'),
    synced_at        timestamptz,
    CONSTRAINT iam_role_inline_policy_unique UNIQUE (role_name, policy_name)
);
SELECT infra.manage('aws.iam_role_inline_policy');
