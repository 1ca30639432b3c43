-- aws.lb_listener: see providers/aws-elb/src/listener.rs for column kinds.
-- Its default action is a forward to a target group or a fixed response,
-- exactly one. The certificate is a plain ARN: certificates may live
-- outside infrasql.
CREATE TABLE aws.lb_listener (
    listener_arn                text NOT NULL UNIQUE DEFAULT infra.provisional_id('listener'),
    region                      text NOT NULL DEFAULT infra.default_region(),
    lb_arn                      text NOT NULL
                                REFERENCES aws.lb (lb_arn) ON UPDATE CASCADE,
    port                        integer NOT NULL CHECK (port BETWEEN 1 AND 65535),
    protocol                    text NOT NULL DEFAULT 'HTTP'
                                CHECK (protocol IN ('HTTP', 'HTTPS', 'TCP', 'TLS', 'UDP', 'TCP_UDP')),
    ssl_policy                  text,
    certificate_arn             text,
    default_target_group_arn    text
                                REFERENCES aws.lb_target_group (target_group_arn) ON UPDATE CASCADE,
    fixed_response_status_code  text CHECK (fixed_response_status_code ~ '^[245][0-9][0-9]$'),
    fixed_response_content_type text,
    fixed_response_body         text,
    tags                        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(tags) = 'object'),
    synced_at                   timestamptz,
    CONSTRAINT lb_listener_port_unique UNIQUE (lb_arn, port),
    CONSTRAINT lb_listener_one_action
        CHECK (num_nonnulls(default_target_group_arn, fixed_response_status_code) = 1),
    CONSTRAINT lb_listener_fixed_response
        CHECK (fixed_response_status_code IS NOT NULL
               OR num_nonnulls(fixed_response_content_type, fixed_response_body) = 0)
);
CREATE INDEX lb_listener_default_target_group_arn ON aws.lb_listener (default_target_group_arn);
SELECT infra.manage('aws.lb_listener');
