-- aws.internet_gateway: see providers/aws/src/ec2/internet_gateway.rs for column kinds.
-- vpc_id is the attachment: NULL means detached; changing it moves the
-- gateway in place. Deleting the VPC needs the gateway detached (or deleted)
-- in the same transaction.
CREATE TABLE aws.internet_gateway (
    internet_gateway_id text PRIMARY KEY DEFAULT infra.provisional_id('igw'),
    region              text NOT NULL DEFAULT infra.default_region(),
    name                text,
    vpc_id              text REFERENCES aws.vpc (vpc_id) ON UPDATE CASCADE,
    tags                jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(tags) = 'object'),
    owner_id            text,
    attachment_state    text,
    synced_at           timestamptz
);
CREATE INDEX internet_gateway_vpc_id ON aws.internet_gateway (vpc_id);
SELECT infra.manage('aws.internet_gateway');
