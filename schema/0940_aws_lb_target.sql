-- aws.lb_target: see providers/aws-elb/src/target.rs for column kinds.
-- target_id is synthetic, '<target_group_arn>|<instance id or IP>|<port>',
-- set by the provider when the target is registered. An instance or an IP
-- address, exactly one.
CREATE TABLE aws.lb_target (
    target_id         text NOT NULL UNIQUE DEFAULT infra.provisional_id('target'),
    region            text NOT NULL DEFAULT infra.default_region(),
    target_group_arn  text NOT NULL
                      REFERENCES aws.lb_target_group (target_group_arn) ON UPDATE CASCADE,
    instance_id       text
                      REFERENCES aws.instance (instance_id) ON UPDATE CASCADE,
    ip_address        inet,
    port              integer NOT NULL CHECK (port BETWEEN 1 AND 65535),
    availability_zone text,
    health_state      text,
    health_reason     text,
    synced_at         timestamptz,
    CONSTRAINT lb_target_one_target CHECK (num_nonnulls(instance_id, ip_address) = 1)
);
CREATE INDEX lb_target_target_group_arn ON aws.lb_target (target_group_arn);
CREATE INDEX lb_target_instance_id ON aws.lb_target (instance_id);
SELECT infra.manage('aws.lb_target');
