-- aws.security_group: see providers/aws/src/ec2/security_group.rs for column kinds.
-- A new group has no rules: AWS's default allow-all egress rule is revoked
-- at create; rules are rows of aws.security_group_rule.
CREATE TABLE aws.security_group (
    group_id           text PRIMARY KEY DEFAULT infra.provisional_id('sg'),
    region             text NOT NULL DEFAULT infra.default_region(),
    name               text,
    group_name         text NOT NULL CHECK (char_length(group_name) BETWEEN 1 AND 255),
    description        text NOT NULL DEFAULT 'Managed by infrasql'
                       CHECK (char_length(description) BETWEEN 1 AND 255),
    vpc_id             text NOT NULL
                       REFERENCES aws.vpc (vpc_id) ON UPDATE CASCADE,
    tags               jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(tags) = 'object'),
    owner_id           text,
    security_group_arn text,
    synced_at          timestamptz,
    CONSTRAINT security_group_name_unique UNIQUE (vpc_id, group_name)
);
SELECT infra.manage('aws.security_group');
