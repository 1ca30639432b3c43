-- aws.lb_listener_rule: see providers/aws-elb/src/listener_rule.rs for
-- column kinds. Conditions are AWS's JSON shape, e.g.
-- [{"Field": "path-pattern", "Values": ["/api/*"]}]; the action is a
-- forward to a target group or a fixed response, exactly one.
CREATE TABLE aws.lb_listener_rule (
    rule_arn                    text NOT NULL UNIQUE DEFAULT infra.provisional_id('rule'),
    region                      text NOT NULL DEFAULT infra.default_region(),
    listener_arn                text NOT NULL
                                REFERENCES aws.lb_listener (listener_arn) ON UPDATE CASCADE,
    priority                    integer NOT NULL CHECK (priority BETWEEN 1 AND 50000),
    conditions                  jsonb NOT NULL
                                CHECK (jsonb_typeof(conditions) = 'array' AND jsonb_array_length(conditions) >= 1),
    target_group_arn            text
                                REFERENCES aws.lb_target_group (target_group_arn) ON UPDATE CASCADE,
    fixed_response_status_code  text CHECK (fixed_response_status_code ~ '^[245][0-9][0-9]$'),
    fixed_response_content_type text,
    fixed_response_body         text,
    tags                        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(tags) = 'object'),
    synced_at                   timestamptz,
    CONSTRAINT lb_listener_rule_priority_unique UNIQUE (listener_arn, priority),
    CONSTRAINT lb_listener_rule_one_action
        CHECK (num_nonnulls(target_group_arn, fixed_response_status_code) = 1),
    CONSTRAINT lb_listener_rule_fixed_response
        CHECK (fixed_response_status_code IS NOT NULL
               OR num_nonnulls(fixed_response_content_type, fixed_response_body) = 0)
);
CREATE INDEX lb_listener_rule_target_group_arn ON aws.lb_listener_rule (target_group_arn);
SELECT infra.manage('aws.lb_listener_rule');
