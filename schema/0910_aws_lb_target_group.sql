-- aws.lb_target_group: see providers/aws-elb/src/target_group.rs for column
-- kinds. Only instance and ip groups have rows (sync leaves lambda and alb
-- groups alone: they have no port, protocol or VPC). A health-check column
-- left NULL takes AWS's default, which the row then shows.
CREATE TABLE aws.lb_target_group (
    target_group_arn              text NOT NULL UNIQUE DEFAULT infra.provisional_id('tg'),
    region                        text NOT NULL DEFAULT infra.default_region(),
    name                          text NOT NULL
                                  CHECK (name ~ '^[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?$'),
    protocol                      text NOT NULL DEFAULT 'HTTP'
                                  CHECK (protocol IN ('HTTP', 'HTTPS', 'TCP', 'TLS', 'UDP', 'TCP_UDP', 'GENEVE')),
    port                          integer NOT NULL CHECK (port BETWEEN 1 AND 65535),
    vpc_id                        text NOT NULL
                                  REFERENCES aws.vpc (vpc_id) ON UPDATE CASCADE,
    target_type                   text NOT NULL DEFAULT 'instance'
                                  CHECK (target_type IN ('instance', 'ip')),
    health_check_protocol         text
                                  CHECK (health_check_protocol IN ('HTTP', 'HTTPS', 'TCP', 'TLS', 'UDP', 'TCP_UDP', 'GENEVE')),
    health_check_port             text,
    health_check_path             text,
    health_check_interval_seconds integer CHECK (health_check_interval_seconds BETWEEN 5 AND 300),
    health_check_timeout_seconds  integer CHECK (health_check_timeout_seconds BETWEEN 2 AND 120),
    healthy_threshold_count       integer CHECK (healthy_threshold_count BETWEEN 2 AND 10),
    unhealthy_threshold_count     integer CHECK (unhealthy_threshold_count BETWEEN 2 AND 10),
    matcher                       text,
    tags                          jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(tags) = 'object'),
    synced_at                     timestamptz,
    CONSTRAINT lb_target_group_name_unique UNIQUE (region, name)
);
CREATE INDEX lb_target_group_vpc_id ON aws.lb_target_group (vpc_id);
SELECT infra.manage('aws.lb_target_group');
