-- aws.instance: see providers/aws/src/ec2/instance.rs for column kinds.
-- subnet_id NULL launches into the default subnet (sync then writes the real
-- one); security_group_id NULL means the VPC's default group and stays NULL.
-- security_group_ids lists every group attached, including any attached
-- outside infrasql. user_data is write-only: used at launch (or to replace
-- the user data of a stopped-and-restarted instance) and then nulled; AWS's
-- limit is 16 KB before base64.
CREATE TABLE aws.instance (
    instance_id        text PRIMARY KEY DEFAULT infra.provisional_id('i'),
    region             text NOT NULL DEFAULT infra.default_region(),
    name               text,
    image_id           text NOT NULL CHECK (char_length(image_id) > 0),
    instance_type      text NOT NULL DEFAULT 't3.micro'
                       CHECK (instance_type ~ '^[a-z0-9-]+\.[a-z0-9-]+$'),
    subnet_id          text
                       REFERENCES aws.subnet (subnet_id) ON UPDATE CASCADE,
    security_group_id  text
                       REFERENCES aws.security_group (group_id) ON UPDATE CASCADE,
    key_name           text CHECK (char_length(key_name) BETWEEN 1 AND 255),
    user_data          text CHECK (octet_length(user_data) <= 16384),
    tags               jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(tags) = 'object'),
    state              text,
    security_group_ids jsonb,
    vpc_id             text,
    availability_zone  text,
    private_ip_address inet,
    public_ip_address  inet,
    private_dns_name   text,
    public_dns_name    text,
    launch_time        timestamptz,
    architecture       text,
    owner_id           text,
    synced_at          timestamptz
);
CREATE INDEX instance_subnet_id ON aws.instance (subnet_id);
CREATE INDEX instance_security_group_id ON aws.instance (security_group_id);
SELECT infra.manage('aws.instance');
