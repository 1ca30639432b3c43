-- aws.elastic_ip: see providers/aws/src/ec2/elastic_ip.rs for column kinds.
-- Deleting a row releases the address.
CREATE TABLE aws.elastic_ip (
    allocation_id        text PRIMARY KEY DEFAULT infra.provisional_id('eipalloc'),
    region               text NOT NULL DEFAULT infra.default_region(),
    name                 text,
    domain               text NOT NULL DEFAULT 'vpc' CHECK (domain = 'vpc'),
    tags                 jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(tags) = 'object'),
    public_ip            inet,
    public_ipv4_pool     text,
    network_border_group text,
    association_id       text,
    instance_id          text,
    network_interface_id text,
    private_ip_address   inet,
    synced_at            timestamptz
);
SELECT infra.manage('aws.elastic_ip');
