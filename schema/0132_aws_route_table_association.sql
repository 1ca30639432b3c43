-- aws.route_table_association: see providers/aws/src/ec2/route_table_association.rs.
-- A subnet has at most one explicit association.
CREATE TABLE aws.route_table_association (
    route_table_association_id text PRIMARY KEY DEFAULT infra.provisional_id('rtbassoc'),
    region                     text NOT NULL DEFAULT infra.default_region(),
    route_table_id             text NOT NULL
                               REFERENCES aws.route_table (route_table_id) ON UPDATE CASCADE,
    subnet_id                  text NOT NULL
                               REFERENCES aws.subnet (subnet_id) ON UPDATE CASCADE,
    association_state          text,
    main                       boolean,
    synced_at                  timestamptz,
    CONSTRAINT route_table_association_subnet_unique UNIQUE (subnet_id)
);
CREATE INDEX route_table_association_route_table_id ON aws.route_table_association (route_table_id);
SELECT infra.manage('aws.route_table_association');
