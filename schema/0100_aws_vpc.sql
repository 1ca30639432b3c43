-- aws.vpc: see providers/aws/src/ec2/vpc.rs for column kinds.
CREATE TABLE aws.vpc (
    vpc_id               text PRIMARY KEY DEFAULT infra.provisional_id('vpc'),
    region               text NOT NULL DEFAULT infra.default_region(),
    name                 text,
    cidr_block           cidr NOT NULL CHECK (masklen(cidr_block) BETWEEN 16 AND 28 AND family(cidr_block) = 4),
    instance_tenancy     text NOT NULL DEFAULT 'default' CHECK (instance_tenancy IN ('default', 'dedicated')),
    enable_dns_support   boolean NOT NULL DEFAULT true,
    enable_dns_hostnames boolean NOT NULL DEFAULT false,
    tags                 jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(tags) = 'object'),
    state                text,
    owner_id             text,
    is_default           boolean,
    dhcp_options_id      text,
    synced_at            timestamptz
);
SELECT infra.manage('aws.vpc');
