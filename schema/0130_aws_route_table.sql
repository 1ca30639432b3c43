-- aws.route_table: see providers/aws/src/ec2/route_table.rs for column kinds.
CREATE TABLE aws.route_table (
    route_table_id text PRIMARY KEY DEFAULT infra.provisional_id('rtb'),
    region         text NOT NULL DEFAULT infra.default_region(),
    name           text,
    vpc_id         text NOT NULL
                   REFERENCES aws.vpc (vpc_id) ON UPDATE CASCADE,
    tags           jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(tags) = 'object'),
    owner_id       text,
    is_main        boolean,
    synced_at      timestamptz
);
CREATE INDEX route_table_vpc_id ON aws.route_table (vpc_id);
SELECT infra.manage('aws.route_table');
