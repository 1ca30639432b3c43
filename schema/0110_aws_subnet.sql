-- aws.subnet: see providers/aws/src/ec2/subnet.rs for column kinds.
CREATE TABLE aws.subnet (
    subnet_id                  text PRIMARY KEY DEFAULT infra.provisional_id('subnet'),
    region                     text NOT NULL DEFAULT infra.default_region(),
    name                       text,
    vpc_id                     text NOT NULL REFERENCES aws.vpc (vpc_id) ON UPDATE CASCADE,
    cidr_block                 cidr NOT NULL CHECK (masklen(cidr_block) BETWEEN 16 AND 28 AND family(cidr_block) = 4),
    availability_zone          text,
    map_public_ip_on_launch    boolean NOT NULL DEFAULT false,
    tags                       jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(tags) = 'object'),
    state                      text,
    availability_zone_id       text,
    available_ip_address_count integer,
    default_for_az             boolean,
    owner_id                   text,
    subnet_arn                 text,
    synced_at                  timestamptz
);
CREATE INDEX subnet_vpc_id ON aws.subnet (vpc_id);
SELECT infra.manage('aws.subnet');
