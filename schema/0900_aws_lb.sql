-- aws.lb: see providers/aws-elb/src/lb.rs for column kinds. An application
-- or network load balancer; its ARN is the id. Its subnets and security
-- groups are join tables (as 0600 does for a DB subnet group's subnets):
-- CreateLoadBalancer gets both sets whole, a changed set is one SetSubnets
-- or SetSecurityGroups with the whole new set.
CREATE TABLE aws.lb (
    lb_arn                   text NOT NULL UNIQUE DEFAULT infra.provisional_id('lb'),
    region                   text NOT NULL DEFAULT infra.default_region(),
    name                     text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 32),
    type                     text NOT NULL DEFAULT 'application'
                             CHECK (type IN ('application', 'network')),
    scheme                   text NOT NULL DEFAULT 'internet-facing'
                             CHECK (scheme IN ('internet-facing', 'internal')),
    ip_address_type          text NOT NULL DEFAULT 'ipv4'
                             CHECK (ip_address_type IN ('ipv4', 'dualstack', 'dualstack-without-public-ipv4')),
    tags                     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(tags) = 'object'),
    dns_name                 text,
    canonical_hosted_zone_id text,
    vpc_id                   text,
    state                    text,
    synced_at                timestamptz,
    CONSTRAINT lb_name_unique UNIQUE (region, name)
);
SELECT infra.manage('aws.lb');

CREATE TABLE aws.lb_subnet (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    lb_arn    text NOT NULL
              REFERENCES aws.lb (lb_arn) ON UPDATE CASCADE ON DELETE CASCADE,
    subnet_id text NOT NULL
              REFERENCES aws.subnet (subnet_id) ON UPDATE CASCADE,
    UNIQUE (lb_arn, subnet_id)
);
CREATE INDEX lb_subnet_subnet_id ON aws.lb_subnet (subnet_id);
COMMENT ON TABLE aws.lb_subnet IS 'The subnets of each load balancer, one row per subnet (the set subnet_ids of aws.lb): rows inserted with the load balancer in one transaction make one CreateLoadBalancer with every subnet; INSERT or DELETE a row later to change the set in place (SetSubnets with the whole set). At most one subnet per availability zone; an application load balancer needs two zones';
COMMENT ON COLUMN aws.lb_subnet.id IS 'The row''s own key, assigned by the database';
COMMENT ON COLUMN aws.lb_subnet.lb_arn IS 'The load balancer (its rows go when it is deleted)';
COMMENT ON COLUMN aws.lb_subnet.subnet_id IS 'A subnet of the load balancer';
SELECT infra.manage_set('aws.lb_subnet', 'aws.lb', 'lb_arn');

CREATE TABLE aws.lb_security_group (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    lb_arn   text NOT NULL
             REFERENCES aws.lb (lb_arn) ON UPDATE CASCADE ON DELETE CASCADE,
    group_id text NOT NULL
             REFERENCES aws.security_group (group_id) ON UPDATE CASCADE,
    UNIQUE (lb_arn, group_id)
);
CREATE INDEX lb_security_group_group_id ON aws.lb_security_group (group_id);
COMMENT ON TABLE aws.lb_security_group IS 'The security groups of each load balancer, one row per group (the set security_group_ids of aws.lb): rows inserted with the load balancer in one transaction make one CreateLoadBalancer with every group; INSERT or DELETE a row later to change the set in place (SetSecurityGroups with the whole set)';
COMMENT ON COLUMN aws.lb_security_group.id IS 'The row''s own key, assigned by the database';
COMMENT ON COLUMN aws.lb_security_group.lb_arn IS 'The load balancer (its rows go when it is deleted)';
COMMENT ON COLUMN aws.lb_security_group.group_id IS 'A security group of the load balancer';
SELECT infra.manage_set('aws.lb_security_group', 'aws.lb', 'lb_arn');
