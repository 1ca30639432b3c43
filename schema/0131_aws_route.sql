-- aws.route: see providers/aws/src/ec2/route.rs for column kinds.
-- route_id is synthetic: '<route_table_id>|<destination_cidr_block>', set by
-- the provider when the route is created.
CREATE TABLE aws.route (
    route_id                  text PRIMARY KEY DEFAULT infra.provisional_id('route'),
    region                    text NOT NULL DEFAULT infra.default_region(),
    route_table_id            text NOT NULL
                              REFERENCES aws.route_table (route_table_id) ON UPDATE CASCADE,
    destination_cidr_block    cidr NOT NULL CHECK (family(destination_cidr_block) = 4),
    gateway_id                text
                              REFERENCES aws.internet_gateway (internet_gateway_id) ON UPDATE CASCADE,
    nat_gateway_id            text,
    vpc_peering_connection_id text,
    origin                    text,
    state                     text,
    synced_at                 timestamptz,
    CONSTRAINT route_destination_unique UNIQUE (route_table_id, destination_cidr_block),
    CONSTRAINT route_one_target
        CHECK (num_nonnulls(gateway_id, nat_gateway_id, vpc_peering_connection_id) = 1)
);
CREATE INDEX route_gateway_id ON aws.route (gateway_id);
SELECT infra.manage('aws.route');
