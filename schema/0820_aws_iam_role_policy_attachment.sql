-- aws.iam_role_policy_attachment: see providers/aws-iam/src/attachment.rs.
-- attachment_id is synthetic, '<role_name>|<policy arn>', set by the
-- provider when the policy is attached. The policy is a row (policy_arn)
-- or any other policy by ARN (managed_policy_arn): exactly one.
CREATE TABLE aws.iam_role_policy_attachment (
    attachment_id      text NOT NULL UNIQUE DEFAULT infra.provisional_id('iam-attachment'),
    region             text NOT NULL DEFAULT 'global' CHECK (region = 'global'),
    role_name          text NOT NULL
                       REFERENCES aws.iam_role (role_name) ON UPDATE CASCADE,
    policy_arn         text
                       REFERENCES aws.iam_policy (policy_arn) ON UPDATE CASCADE,
    managed_policy_arn text CHECK (managed_policy_arn LIKE 'arn:%'),
    synced_at          timestamptz,
    CONSTRAINT iam_role_policy_attachment_one_policy
        CHECK (num_nonnulls(policy_arn, managed_policy_arn) = 1)
);
-- A policy is attached to a role once, whichever column names it.
CREATE UNIQUE INDEX iam_role_policy_attachment_unique
    ON aws.iam_role_policy_attachment (role_name, coalesce(policy_arn, managed_policy_arn));
CREATE INDEX iam_role_policy_attachment_policy_arn ON aws.iam_role_policy_attachment (policy_arn);
SELECT infra.manage('aws.iam_role_policy_attachment');
