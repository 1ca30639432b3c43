-- aws.security_group_rule: see providers/aws/src/ec2/security_group_rule.rs.
-- Mirrors AWS's SecurityGroupRule. Ports: tcp/udp a range 0..65535;
-- icmp/icmpv6 the ICMP type and code (-1..255, -1 = all; type -1 needs
-- code -1; no ordering: type 8 code 0 is echo request); all traffic (-1)
-- has none. referenced_group_id is not a foreign key: it may name a group
-- in another account or a peered VPC.
CREATE TABLE aws.security_group_rule (
    security_group_rule_id  text PRIMARY KEY DEFAULT infra.provisional_id('sgr'),
    region                  text NOT NULL DEFAULT infra.default_region(),
    name                    text,
    group_id                text NOT NULL
                            REFERENCES aws.security_group (group_id) ON UPDATE CASCADE,
    is_egress               boolean NOT NULL DEFAULT false,
    ip_protocol             text NOT NULL CHECK (ip_protocol IN ('tcp', 'udp', 'icmp', 'icmpv6', '-1')),
    from_port               integer,
    to_port                 integer,
    cidr_ipv4               cidr CHECK (family(cidr_ipv4) = 4),
    cidr_ipv6               cidr CHECK (family(cidr_ipv6) = 6),
    prefix_list_id          text,
    referenced_group_id     text,
    description             text CHECK (char_length(description) <= 255),
    tags                    jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(tags) = 'object'),
    group_owner_id          text,
    security_group_rule_arn text,
    synced_at               timestamptz,
    CONSTRAINT security_group_rule_one_peer
        CHECK (num_nonnulls(cidr_ipv4, cidr_ipv6, prefix_list_id, referenced_group_id) = 1),
    CONSTRAINT security_group_rule_ports CHECK (CASE
        WHEN ip_protocol IN ('tcp', 'udp') THEN
            from_port IS NOT NULL AND to_port IS NOT NULL
            AND from_port BETWEEN 0 AND 65535 AND to_port BETWEEN 0 AND 65535
            AND from_port <= to_port
        WHEN ip_protocol IN ('icmp', 'icmpv6') THEN
            from_port IS NOT NULL AND to_port IS NOT NULL
            AND from_port BETWEEN -1 AND 255 AND to_port BETWEEN -1 AND 255
            AND (from_port <> -1 OR to_port = -1)
        ELSE from_port IS NULL AND to_port IS NULL
    END)
);
CREATE INDEX security_group_rule_group_id ON aws.security_group_rule (group_id);
SELECT infra.manage('aws.security_group_rule');
